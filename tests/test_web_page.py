"""The chat page (web/) in a real browser: Debian's Chromium driven by Playwright, against the real local stack.

Chromium comes from the system (``apt-get install chromium``; Playwright's own browser download does not work on
these machines). Without it these tests are skipped, unless ``REQUIRE_BROWSER=1`` (CI sets it) makes that a
failure. A failing test leaves a screenshot in ``.local/screenshots/`` (the ``browser`` and ``page`` fixtures are
in conftest.py, shared with test_web_safety.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.local_run import LIMITS_TABLE_NAME, WEB_DIRECTORY
from devtools.simulated_provider import answer_tokens, reasoning_tokens
from tests.conftest import SCREENSHOTS, deploy_page, static_server
from tests.helpers import messages_of, new_session, relay_server, stream_chat
from tests.outage import FaultyProxy

LAST_ANSWER = ".message.ai >> nth=-1"
CONVERSATIONS = "#conversations > li"


def open_chat(page: Any, base_url: str, model: str, query: str = "") -> None:
    page.goto(f"{base_url}/{query}")
    page.wait_for_selector("#provider option[value=simulated]", state="attached")
    page.select_option("#provider", "simulated")
    page.fill("#model", model)
    page.dispatch_event("#model", "change")


def send(page: Any, text: str) -> None:
    page.fill("#content", text)
    page.press("#content", "Enter")


def answer(page: Any) -> dict[str, Any]:
    return page.eval_on_selector(LAST_ANSWER, """(element) => ({
        status: element.dataset.status, messageId: element.dataset.messageId ?? null,
        text: element.querySelector('.content').textContent, meta: element.querySelector('.meta').innerText,
        html: element.querySelector('.content').innerHTML, renders: Number(element.dataset.renders)})""")


def watch_until(page: Any, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> list[dict[str, Any]]:
    """Samples of the last answer every 50 ms until ``done`` holds for one."""
    page.wait_for_selector(LAST_ANSWER)
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(answer(page))
        if done(samples[-1]):
            return samples
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out; last state: {samples[-1]}")


def words(text: str) -> str:
    return " ".join(text.split())


def session_of(page: Any) -> str:
    return str(page.evaluate("new URLSearchParams(location.hash.slice(1)).get('session')"))


def test_the_answer_grows_on_screen_and_ends_as_the_stored_message(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=300,tokens_per_second=15,tokens=30")

    send(page, "Hello, page")
    samples = watch_until(page, lambda state: state["status"] == "complete")

    assert samples[0]["status"] == "pending"  # the spinner, before the first token
    growing = [len(state["text"]) for state in samples if state["status"] == "streaming"]
    assert len(set(growing)) >= 3, "the text should grow on screen several times before the done state"
    assert growing == sorted(growing)
    final = samples[-1]
    user, ai = messages_of(client, session_of(page))
    assert user["content"] == "Hello, page"
    assert (ai["messageId"], ai["status"]) == (final["messageId"], "complete")
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(30)))
    assert "tokens/s" in final["meta"]


def test_rendering_is_throttled_to_about_ten_updates_a_second(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=200,tokens=300")

    send(page, "a fast answer")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]

    assert words(final["text"]) == words("".join(answer_tokens(300)))
    assert final["renders"] < 300 / 5, f"{final['renders']} renders for 300 tokens in about 1.5 s"


def test_markdown_is_rendered_and_what_could_run_is_removed(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,echo=1")

    send(page, "Some **bold** and `code`\n\n<img src=x onerror=\"document.title='owned'\"> <script>alert(1)</script>")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]

    assert "<strong>bold</strong>" in final["html"] and "<code>code</code>" in final["html"]
    assert "onerror" not in final["html"] and "<script" not in final["html"]
    assert page.title() != "owned"


def test_a_provider_error_shows_the_error_state_with_its_message(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=20,fault=error_after,fault_at=4")

    send(page, "this will fail")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]

    assert final["status"] == "error"
    assert "provider_error" in final["meta"]
    _, ai = messages_of(client, session_of(page))
    assert ai["status"] == "error"
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(4)))


def test_stop_ends_the_answer_as_interrupted_with_the_text_so_far(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=20,tokens=400")

    send(page, "a long one")
    watch_until(page, lambda state: len(state["text"]) > 20)
    page.click("#stop")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]

    assert final["status"] == "interrupted"
    _, ai = messages_of(client, session_of(page))
    assert ai["status"] == "interrupted"
    assert words(final["text"]) == words(ai["content"])
    assert len(ai["content"]) < len("".join(answer_tokens(400)))


def test_a_connection_cut_mid_answer_resumes_to_the_full_text(page, stack, client):
    proxy = FaultyProxy(stack.url)
    resumed: list[str] = []
    page.on("request", lambda request: resumed.append(request.url) if request.url.endswith("/stream") else None)
    try:
        # non-ASCII (🙂 is two UTF-16 units, one code point) before the cut: the resume's offset counts code points
        open_chat(page, proxy.url, "sim:first_token_ms=0,tokens_per_second=20,tokens=60,words=tricky")
        send(page, "keep going")
        before = watch_until(page, lambda state: len(state["text"]) > 30)[-1]
        proxy.cut()
        final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    finally:
        proxy.close()

    assert resumed, "the page should have asked to resume the answer"
    assert final["status"] == "complete"
    _, ai = messages_of(client, session_of(page))
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(60, "tricky")))
    assert len(final["text"]) > len(before["text"])


def test_reloading_the_page_shows_the_chat_history_with_each_state(page, stack, client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "first question"})

    page.goto(f"{stack.url}/#session={chat_session_id}")
    page.wait_for_selector(".message.ai")

    shown = page.eval_on_selector_all(".message", """(elements) => elements.map((element) => ({
        role: element.classList.contains('user') ? 'user' : 'ai', status: element.dataset.status,
        text: element.querySelector('.content').textContent}))""")
    stored = messages_of(client, chat_session_id)
    assert [(m["role"], m["status"], words(m["text"])) for m in shown] == [
        (m["role"], m["status"], words(m["content"])) for m in stored]


def test_the_page_works_as_plain_static_files_on_another_origin(page, stack, dynamodb, client, tmp_path):
    # GIVEN a relay, and a copy of web/ set up for it as the README says (relay-url, connect-src), served by a plain
    # static file server on another origin that the relay allows (CORS)
    with static_server(tmp_path) as origin, relay_server(dynamodb, cors_allow_origins=(origin,)) as relay_url:
        deploy_page(tmp_path, connect=(relay_url,), relay_url=relay_url)
        # WHEN the page is opened
        open_chat(page, origin, "sim:first_token_ms=0,tokens_per_second=50,tokens=20")
        send(page, "from another origin")
        final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    # THEN it streams through CORS like the local page does
    assert final["status"] == "complete"
    _, ai = messages_of(client, session_of(page))
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(20)))


def thinking(page: Any) -> dict[str, Any] | None:
    return page.eval_on_selector(LAST_ANSWER, """(element) => {
        const block = element.querySelector(':scope > details.thinking');
        return block && {open: block.open, state: block.dataset.state,
                         summary: block.querySelector('summary').textContent,
                         text: block.querySelector('.reasoning').textContent,
                         above: block.nextElementSibling === element.querySelector('.content'),
                         answer: element.querySelector('.content').textContent};
    }""")


def test_the_reasoning_streams_into_an_open_thinking_block_above_the_answer_then_folds_away(page, stack, client):
    # GIVEN a model that reasons for about a second before it answers
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=15,tokens=12,reasoning=15")
    # WHEN a message is sent
    send(page, "think first")
    page.wait_for_selector(f"{LAST_ANSWER} >> details.thinking")
    samples = []
    deadline = time.monotonic() + 20
    while (state := answer(page))["status"] in ("pending", "streaming") and time.monotonic() < deadline:
        samples.append(thinking(page))
        page.wait_for_timeout(50)
    final = thinking(page)
    assert state["status"] == "complete"
    # THEN the Thinking block grew, open, above an answer that had not begun
    reasoning = [sample for sample in samples if sample and not sample["answer"]]
    assert len({len(sample["text"]) for sample in reasoning}) >= 3, reasoning
    assert all(sample["open"] and sample["state"] == "streaming" and sample["above"] for sample in reasoning)
    assert reasoning[0]["summary"] == "Thinking"
    # AND once the answer came it was folded away, holding the whole reasoning as stored
    _, ai = messages_of(client, session_of(page))
    assert (final["open"], final["state"], final["text"]) == (False, "done", ai["reasoning"])
    assert ai["reasoning"] == "".join(reasoning_tokens(15))
    assert words(state["text"]) == words(ai["content"])
    # AND a click opens it again
    page.click(f"{LAST_ANSWER} >> details.thinking > summary")
    assert thinking(page)["open"] is True


def test_a_reloaded_answer_shows_its_stored_reasoning_folded_and_a_plain_answer_none(page, stack, client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5,reasoning=6")
    stream_chat(client, chat_session_id, "with reasoning")
    page.goto(f"{stack.url}/#session={chat_session_id}")
    page.wait_for_selector(".message.ai >> details.thinking")
    shown = thinking(page)
    assert (shown["open"], shown["text"], shown["above"]) == (False, "".join(reasoning_tokens(6)), True)
    plain = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    stream_chat(client, plain, "without")
    page.goto(f"{stack.url}/#session={plain}")
    page.reload()
    page.wait_for_selector(".message.ai")
    assert thinking(page) is None


# ---- issue 17: the page behaves as a reader expects ------------------------------------------------------------

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"

GEOMETRY = """() => {
    const thread = document.getElementById("thread");
    const box = (element) => element.getBoundingClientRect();
    const last = document.querySelector("#messages > .message:last-child");
    return {
        lastBottom: box(last).bottom, lastMetaBottom: box(last.querySelector(".meta")).bottom,
        composerTop: box(document.getElementById("composer")).top, threadTop: box(thread).top,
        scrollTop: thread.scrollTop, fromBottom: thread.scrollHeight - thread.scrollTop - thread.clientHeight,
        overflows: thread.scrollHeight > thread.clientHeight + 100,
        jumpShown: !document.getElementById("jump").hidden,
    };
}"""


def geometry(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(GEOMETRY))


def answers(page: Any) -> list[dict[str, Any]]:
    return list(page.eval_on_selector_all(".message.ai", """(elements) => elements.map((element) => ({
        status: element.dataset.status, meta: element.querySelector('.meta').innerText}))"""))


def until_settled(page: Any, count: int) -> list[dict[str, Any]]:
    """The page's answers once ``count`` of them have ended, whichever way."""
    page.wait_for_function("""(count) => {
        const ended = [...document.querySelectorAll('.message.ai')]
            .filter((element) => !['pending', 'streaming'].includes(element.dataset.status));
        return ended.length >= count;
    }""", arg=count)
    return answers(page)


def text_length_above(page: Any, length: int) -> None:
    """Waits until the last answer shows more than ``length`` characters: renders happened meanwhile."""
    page.wait_for_function("(length) => [...document.querySelectorAll('.message.ai .content')].at(-1)"
                           ".textContent.length > length", arg=length)


def thread_overflows_by(page: Any, pixels: int) -> None:
    """Waits until the thread is taller than its view by ``pixels``. (Predicates are functions: the page's policy
    has no 'unsafe-eval', so Playwright cannot evaluate a bare expression in it.)"""
    page.wait_for_function("(pixels) => { const thread = document.getElementById('thread');"
                           " return thread.scrollHeight > thread.clientHeight + pixels; }", arg=pixels)


def shown_text_length(page: Any) -> int:
    return int(page.eval_on_selector(LAST_ANSWER, "(element) => element.querySelector('.content').textContent.length"))


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_escape_stops_the_answer_and_its_status_line_shows_above_the_composer(page, stack, client, size):
    # GIVEN the page at a desktop's or a phone's size, with an answer longer than the screen
    page.set_viewport_size(SIZES[size])
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=60,tokens=600")
    send(page, "a long one")
    thread_overflows_by(page, 200)
    # WHEN the user presses Escape (the composer has the focus), so that a status line ("Stopped.") appears under it
    page.keyboard.press("Escape")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    # THEN the relay stopped it
    assert final["status"] == "interrupted" and "Stopped." in final["meta"]
    _, ai = messages_of(client, session_of(page))
    assert ai["status"] == "interrupted" and ai["metadata"]["error"]["code"] == "cancelled"
    # ... and the last message, status line included, ends above the composer, in the thread's view
    shown = geometry(page)
    assert shown["overflows"]
    assert shown["lastMetaBottom"] <= shown["lastBottom"] <= shown["composerTop"], shown
    assert shown["lastMetaBottom"] > shown["threadTop"], shown
    assert shown["fromBottom"] <= 8 and not shown["jumpShown"], shown


def test_scrolling_up_mid_answer_stays_put_and_jump_to_latest_goes_back(page, stack):
    # GIVEN an answer streaming past the bottom of the screen, followed as it grows
    page.set_viewport_size(DESKTOP)
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=40,tokens=1200")
    send(page, "a long one")
    thread_overflows_by(page, 400)
    assert geometry(page)["fromBottom"] <= 8
    # WHEN the reader scrolls up with the wheel, and the answer goes on growing under them
    box = page.eval_on_selector("#thread", "(thread) => thread.getBoundingClientRect().toJSON()")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => { const thread = document.getElementById('thread');"
                           " return thread.scrollHeight - thread.scrollTop - thread.clientHeight > 200; }")
    held = geometry(page)
    grown = shown_text_length(page)
    text_length_above(page, grown + 150)  # several renders later
    # THEN the page stays where they put it, and offers the way back
    after = geometry(page)
    assert after["scrollTop"] == held["scrollTop"], (held, after)
    assert after["jumpShown"]
    # WHEN they take it
    page.click("#jump")
    text_length_above(page, shown_text_length(page) + 100)
    # THEN they are at the latest text again, and it is followed from there on
    back = geometry(page)
    assert back["fromBottom"] <= 8 and not back["jumpShown"], back
    page.keyboard.press("Escape")
    watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))


def test_a_reload_lands_at_the_bottom_with_the_sessions_model_and_each_answers_end(page, stack, client):
    # GIVEN a chat in a model other than the picker's default: one answer stopped, then one complete
    model = "sim:first_token_ms=0,tokens_per_second=100,tokens=400"
    open_chat(page, stack.url, model)
    send(page, "stop this one")
    text_length_above(page, 20)
    page.click("#stop")
    until_settled(page, 1)
    send(page, "let this one finish")
    live = until_settled(page, 2)
    chat_session_id = session_of(page)
    # WHEN the page is reloaded
    page.reload()
    page.wait_for_selector(".message.ai >> nth=1")
    # THEN the picker shows the session's own provider and model, not the default
    assert page.input_value("#provider") == "simulated" and page.input_value("#model") == model
    # ... each answer ends as it did, from what is stored: Stopped., and the timing line
    reloaded = answers(page)
    assert [answer["status"] for answer in reloaded] == ["interrupted", "complete"]
    assert "Stopped." in live[0]["meta"] and "Stopped." in reloaded[0]["meta"]
    assert live[1]["meta"] == reloaded[1]["meta"] and "first token" in reloaded[1]["meta"]
    assert "tokens/s" in reloaded[1]["meta"]
    # ... and the page lands at its bottom, the last line above the composer
    shown = geometry(page)
    assert shown["overflows"] and shown["fromBottom"] <= 8 and shown["lastBottom"] <= shown["composerTop"], shown
    assert [m["status"] for m in messages_of(client, chat_session_id) if m["role"] == "ai"] == [
        "interrupted", "complete"]


def test_new_chat_during_an_answer_frees_the_composer_at_once(page, stack, client):
    # GIVEN an answer under way
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=20,tokens=200")
    send(page, "the first chat")
    text_length_above(page, 10)
    first_session = session_of(page)
    # WHEN the user starts a new chat
    page.click("#new-chat")
    # THEN Stop is off and the thread empty at once, without waiting for the old answer to end
    assert page.is_disabled("#stop") and page.is_enabled("#send")
    assert page.eval_on_selector("#messages", "(messages) => messages.children.length") == 0
    assert page.is_visible("#welcome") and "session=" not in page.url
    # ... and a message now starts a new session, answered at once rather than queued
    page.fill("#model", "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    send(page, "the second chat")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    assert final["status"] == "complete"
    assert session_of(page) != first_session
    assert [m["content"] for m in messages_of(client, session_of(page)) if m["role"] == "user"] == ["the second chat"]


def test_enter_during_an_answer_queues_the_message_and_sends_it_after(page, stack, client):
    # GIVEN an answer under way
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=40,tokens=60")
    send(page, "first")
    text_length_above(page, 5)
    # WHEN the user sends another message meanwhile
    send(page, "second")
    # THEN the page says it is queued
    queued = page.eval_on_selector("#messages > .message:last-child", """(element) => ({
        role: element.classList.contains('user') ? 'user' : 'ai', status: element.dataset.status,
        meta: element.querySelector('.meta').innerText})""")
    assert queued["role"] == "user" and queued["status"] == "queued" and "Queued" in queued["meta"]
    # ... and sends it once the answer has ended, in order, on screen and in the store
    assert [answer["status"] for answer in until_settled(page, 2)] == ["complete", "complete"]
    shown = page.eval_on_selector_all("#messages > .message", """(elements) => elements.map((element) =>
        [element.classList.contains('user') ? 'user' : 'ai', element.dataset.status])""")
    assert shown == [["user", "complete"], ["ai", "complete"], ["user", "complete"], ["ai", "complete"]]
    stored = messages_of(client, session_of(page))
    assert [(m["role"], m["content"]) for m in stored if m["role"] == "user"] == [("user", "first"), ("user", "second")]
    assert [m["role"] for m in stored] == ["user", "ai", "user", "ai"]


def test_the_composer_has_focus_on_load_and_keyboard_focus_is_visible(page, stack):
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#provider option[value=simulated]", state="attached")

    assert page.evaluate("document.activeElement.id") == "content"
    page.keyboard.press("Tab")  # Stop is disabled while nothing streams: the next stop is Send
    focused = page.evaluate("""() => ({id: document.activeElement.id,
        outline: getComputedStyle(document.activeElement).outlineStyle,
        width: getComputedStyle(document.activeElement).outlineWidth})""")
    assert focused == {"id": "send", "outline": "solid", "width": "2px"}


def test_the_page_loads_with_no_failed_request_and_no_console_error(page, stack):
    # A favicon among them: without one, the browser's own request for /favicon.ico is a 404 in the console.
    failures: list[str] = []
    page.on("console", lambda message: failures.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: failures.append(response.url) if response.status >= 400 else None)
    page.on("requestfailed", lambda request: failures.append(request.url))
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#example-list button")
    page.wait_for_load_state("networkidle")

    assert failures == []
    icon = page.eval_on_selector("link[rel=icon]", "(link) => link.href")
    assert page.request.get(icon).status == 200


def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings for the page as it is now (axe from node_modules, evaluated by the
    test's driver, which the page's Content-Security-Policy does not govern)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    return list(page.evaluate("""async () => (await axe.run()).violations
        .filter((violation) => ['serious', 'critical'].includes(violation.impact))
        .map((violation) => ({id: violation.id, impact: violation.impact,
                              nodes: violation.nodes.map((node) => node.target.join(' ')).slice(0, 5)}))"""))


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_axe_finds_no_serious_accessibility_violation_in_the_main_states(browser, stack, request, scheme, size):
    # GIVEN the page in the system's light or dark scheme, at a desktop's or a phone's size
    context = browser.new_context(viewport=SIZES[size], color_scheme=scheme)
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        page.goto(f"{stack.url}/")
        page.wait_for_selector("#example-list button")
        found["first screen"] = accessibility_violations(page)
        # WHEN it shows an answer with code, a table and a quote, then an error, then the drawer (on a phone)
        page.click("#example-list button >> nth=0")
        until_settled(page, 1)
        # the list filled, this one marked (on a phone, in the closed drawer)
        page.wait_for_selector(f"{CONVERSATIONS} a[aria-current=page]", state="attached")
        page.wait_for_function("() => !document.getElementById('usage').hidden")
        found["rendered answer"] = accessibility_violations(page)
        if size == "desktop":  # (on a phone the list is in the drawer, closed here)
            page.click(f"{CONVERSATIONS} a[aria-current=page] >> xpath=.. >> button.delete")
            page.wait_for_selector("#confirm-delete[open]")
            found["delete dialog"] = accessibility_violations(page)
            page.click("#confirm-delete-cancel")
        page.fill("#model", "sim:first_token_ms=0,fault=error_after,fault_at=3")
        page.dispatch_event("#model", "change")
        send(page, "fail")
        page.wait_for_selector(".failure")
        found["error"] = accessibility_violations(page)
        if size == "phone":
            page.click("#menu")
            page.wait_for_selector("#new-chat", state="visible")
            found["drawer"] = accessibility_violations(page)
    finally:
        if any(found.values()):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    # THEN axe finds nothing serious in any of them
    assert {state: violations for state, violations in found.items() if violations} == {}


def test_code_blocks_are_highlighted_labelled_scrollable_and_copyable(page, stack):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,echo=1")
    code = "def greet(name):\n    return 'Hello ' + name + '" + "!" * 200 + "'"

    send(page, f"Look:\n\n```python\n{code}\n```\n\n```html\n<img src=x onerror=\"document.title='owned'\">\n```")
    watch_until(page, lambda state: state["status"] == "complete")
    blocks = page.eval_on_selector_all(f"{LAST_ANSWER} >> .code-block", """(blocks) => blocks.map((block) => ({
        language: block.dataset.language, text: block.querySelector('code').textContent,
        tokens: [...block.querySelectorAll('code span')].map((span) => span.className),
        elements: [...block.querySelector('code').querySelectorAll('*')].map((element) => element.localName),
        scrolls: getComputedStyle(block.querySelector('pre')).overflowX,
        wide: block.querySelector('pre').scrollWidth > block.querySelector('pre').clientWidth,
        background: getComputedStyle(block.querySelector('pre')).backgroundColor}))""")
    page.click(f"{LAST_ANSWER} >> .code-block >> nth=0 >> button.copy")
    page.wait_for_selector(f"{LAST_ANSWER} >> .code-block >> nth=0 >> button.copy[data-state=copied]")

    python, html = blocks
    assert (python["language"], python["text"]) == ("python", code + "\n")
    assert "hljs-keyword" in python["tokens"] and "hljs-string" in python["tokens"]
    assert python["scrolls"] == "auto" and python["wide"]
    assert python["background"] not in ("rgba(0, 0, 0, 0)", "transparent")
    # the markup inside a code block is its text, coloured: nothing of it becomes an element that loads or runs
    assert html["language"] == "html" and html["text"] == "<img src=x onerror=\"document.title='owned'\">\n"
    assert set(html["elements"]) == {"span"} and page.title() != "owned"
    assert page.evaluate("navigator.clipboard.readText()") == code
    # the bar's words are the stylesheet's: the answer's text is the answer alone
    assert "Copy" not in answer(page)["text"]


def test_tables_quotes_and_user_messages_look_like_a_chat_apps(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,echo=1")
    wide = "| " + " | ".join(f"column{number}" for number in range(40)) + " |\n|" + "---|" * 40 + "\n"
    markdown = "**bold** <b>raw</b>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n" + wide

    send(page, markdown)
    watch_until(page, lambda state: state["status"] == "complete")
    looks = page.evaluate("""() => {
        const answer = [...document.querySelectorAll('.message.ai .content')].at(-1);
        const user = [...document.querySelectorAll('.message.user .content')].at(-1);
        const style = (element) => getComputedStyle(element);
        return {
            cellBorder: style(answer.querySelector('td')).borderTopWidth,
            quoteBar: style(answer.querySelector('blockquote')).borderLeftWidth,
            tables: [...answer.querySelectorAll('table')].map((table) => ({
                scrolls: table.scrollWidth > table.clientWidth, focusable: table.tabIndex === 0})),
            pageScrolls: document.scrollingElement.scrollWidth > innerWidth,
            userText: user.textContent, userElements: user.children.length,
        };
    }""")

    assert looks["cellBorder"] == "1px" and looks["quoteBar"] == "4px"
    # a wide table scrolls inside the answer, and only it takes keyboard focus to be scrolled
    assert looks["tables"] == [{"scrolls": False, "focusable": False}, {"scrolls": True, "focusable": True}]
    assert not looks["pageScrolls"]
    assert looks["userText"] == markdown and looks["userElements"] == 0  # as typed: text, not markup


def test_a_long_user_message_is_folded_and_unfolds(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    send(page, "\n".join(f"line {number}" for number in range(40)))
    watch_until(page, lambda state: state["status"] == "complete")
    user = ".message.user >> nth=-1"

    folded = page.eval_on_selector(f"{user} >> .content", "(content) => content.getBoundingClientRect().height")
    page.click(f"{user} >> button[aria-expanded=false]")
    unfolded = page.eval_on_selector(f"{user} >> .content", "(content) => content.getBoundingClientRect().height")

    assert unfolded > 3 * folded
    assert page.get_attribute(f"{user} >> button[aria-expanded]", "aria-expanded") == "true"


def test_a_failed_answer_stands_out_with_its_code_and_retry_asks_again(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,fault=error_after,fault_at=4")
    send(page, "this will fail")
    watch_until(page, lambda state: state["status"] == "error")

    failure = page.eval_on_selector(f"{LAST_ANSWER} >> .failure", """(failure) => ({
        code: failure.querySelector('code').textContent, background: getComputedStyle(failure).backgroundColor,
        page: getComputedStyle(document.body).backgroundColor, bar: getComputedStyle(failure).borderLeftWidth})""")
    assert failure["code"] == "provider_error"
    assert failure["background"] != failure["page"] and failure["bar"] == "4px"

    page.click(f"{LAST_ANSWER} >> button.retry")
    assert [answer["status"] for answer in until_settled(page, 2)] == ["error", "error"]
    stored = messages_of(client, session_of(page))
    assert [(m["role"], m["content"]) for m in stored if m["role"] == "user"] == [
        ("user", "this will fail"), ("user", "this will fail")]


def test_the_first_screen_welcomes_and_its_examples_start_a_simulated_chat(page, stack, client):
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#example-list button")
    examples = page.eval_on_selector_all("#example-list code", "(codes) => codes.map((code) => code.textContent)")
    assert "sim:echo=1" in examples and any("fault=" in example for example in examples)
    assert any("first_token_ms" in example for example in examples)  # a slow one

    page.click("#example-list button >> text=sim:echo=1")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]

    assert not page.is_visible("#welcome")
    assert page.input_value("#provider") == "simulated" and page.input_value("#model") == "sim:echo=1"
    assert page.inner_text(f"{LAST_ANSWER} >> .badge").lower() == "simulated"
    assert "<table>" in final["html"] and 'class="code-block"' in final["html"]
    user, ai = messages_of(client, session_of(page))
    assert words(ai["content"]) == words(user["content"])


def test_on_a_phone_the_settings_take_one_line_and_the_conversations_are_a_drawer(page, stack):
    page.set_viewport_size(PHONE)
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#provider option[value=simulated]", state="attached")

    layout = page.evaluate("""() => {
        const textarea = document.getElementById('content');
        const style = getComputedStyle(textarea);
        const context = document.createElement('canvas').getContext('2d');
        context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        return {
            bar: document.getElementById('topbar').getBoundingClientRect().height,
            placeholder: context.measureText(textarea.placeholder).width,
            room: textarea.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
        };
    }""")
    assert layout["bar"] < PHONE["height"] / 10, layout  # one line, not a quarter of the screen
    assert layout["placeholder"] <= layout["room"], layout
    assert not page.is_visible("#new-chat")

    page.click("#menu")
    page.wait_for_selector("#new-chat", state="visible")  # it slides in
    assert page.get_attribute("#menu", "aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "new-chat"
    page.keyboard.press("Escape")
    page.wait_for_selector("#new-chat", state="hidden")
    assert page.get_attribute("#menu", "aria-expanded") == "false"
    page.click("#menu")
    page.click("#new-chat")
    page.wait_for_selector("#new-chat", state="hidden")


def test_make_screenshot_photographs_an_answered_example_at_its_size(page, stack, tmp_path):
    from devtools.screenshot import VIEWPORT, photograph

    page.set_viewport_size(VIEWPORT)
    path = tmp_path / "screenshot.png"
    photograph(page, stack.url, path)

    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20]), int.from_bytes(header[20:24])) == (VIEWPORT["width"], VIEWPORT["height"])
    assert answer(page)["status"] == "complete" and page.is_visible(f"{LAST_ANSWER} >> .code-block")


# ---- issue 16: the conversation list and the usage, on the page ----------------------------------------------

FAST = "sim:first_token_ms=0,tokens_per_second=0,tokens=6"


@pytest.fixture(scope="module")
def users_relay(stack, dynamodb) -> Iterator[str]:
    """The page and the API from an app of the shared stack's settings whose user is whoever X-Test-User names: each
    test's page (``user_page``) is a user of its own, so its list holds that test's conversations alone."""
    with relay_server(dynamodb, WEB_DIRECTORY, users_by_header=True) as url:
        yield url


def api_as(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, headers={"x-test-user": user})


def listed(page: Any) -> list[dict[str, Any]]:
    """The conversation list as shown: each row's session, title and whether it is marked as the open one."""
    return list(page.eval_on_selector_all(CONVERSATIONS, """(rows) => rows.map((row) => ({
        id: row.dataset.sessionId, title: row.querySelector('a')?.textContent ?? null,
        current: row.querySelector('a')?.getAttribute('aria-current') === 'page'}))"""))


def row(chat_session_id: str) -> str:
    return f"{CONVERSATIONS}[data-session-id='{chat_session_id}']"


def titles_of(api: httpx.Client) -> dict[str, str]:
    return {session["chatSessionId"]: session["title"] for session in api.get("/sessions").json()["sessions"]}


def test_the_list_shows_the_users_conversations_newest_first_and_loads_more_by_the_cursor(user_page, users_relay):
    # GIVEN 24 conversations, the newest titled with markup (a title is user text)
    page, user = user_page
    markup = "<img src=x onerror=\"document.title='owned'\"> <b>bold</b>"
    with api_as(users_relay, user) as api:
        made = []
        for index in range(23):
            made.append(new_session(api, FAST, title=f"chat {index}"))
            time.sleep(0.002)  # each its own millisecond: the list's order is by last activity
        made.append(new_session(api, FAST, title=markup))
    newest_first = list(reversed(made))
    # WHEN the page opens
    page.goto(f"{users_relay}/")
    page.wait_for_selector(CONVERSATIONS)
    # THEN it lists the first page, newest first, the markup as text, and offers more
    first = listed(page)
    assert [item["id"] for item in first] == newest_first[:20]
    assert first[0]["title"] == markup and page.query_selector("#conversations img, #conversations b") is None
    assert page.title() != "owned" and not any(item["current"] for item in first)
    # WHEN the user loads more THEN the rest follow, in order, and there is no more to load
    page.click("#more-conversations")
    page.wait_for_function("(count) => document.querySelectorAll('#conversations > li').length === count", arg=24)
    assert [item["id"] for item in listed(page)] == newest_first
    assert page.is_hidden("#more-conversations")
    # AND a link to an old conversation, beyond the first page, opens with it listed and marked
    page.goto("about:blank")
    page.goto(f"{users_relay}/#session={made[0]}")
    page.wait_for_selector(f"{row(made[0])} a[aria-current=page]")
    assert [item["id"] for item in listed(page) if item["current"]] == [made[0]]


def test_a_new_chats_first_message_lists_it_at_the_top_titled_by_that_message(user_page, users_relay):
    page, user = user_page
    with api_as(users_relay, user) as api:
        older = new_session(api, FAST, title="an older chat")
    open_chat(page, users_relay, FAST)
    page.wait_for_selector(row(older))

    send(page, "What is a relay for?")
    watch_until(page, lambda state: state["status"] == "complete")

    chat_session_id = session_of(page)
    page.wait_for_selector(f"{row(chat_session_id)} a[aria-current=page]")
    assert listed(page) == [{"id": chat_session_id, "title": "What is a relay for?", "current": True},
                            {"id": older, "title": "an older chat", "current": False}]


def test_rename_in_place_saves_the_title_and_escape_leaves_it_as_it_was(user_page, users_relay):
    page, user = user_page
    with api_as(users_relay, user) as api:
        chat_session_id = new_session(api, FAST, title="before")
    page.goto(f"{users_relay}/")
    page.wait_for_selector(row(chat_session_id))
    renamed = "after 🙂 <b>not bold</b>"
    # WHEN the user renames it and presses Enter
    page.hover(row(chat_session_id))
    page.click(f"{row(chat_session_id)} button.rename")
    page.fill(f"{row(chat_session_id)} input.rename", renamed)
    page.press(f"{row(chat_session_id)} input.rename", "Enter")
    # THEN the list shows the new title, as text, the relay has it, and the keyboard is back on the row
    page.wait_for_selector(f"{row(chat_session_id)} a")
    assert listed(page)[0]["title"] == renamed
    assert page.evaluate("document.activeElement.closest('li')?.dataset.sessionId") == chat_session_id
    with api_as(users_relay, user) as api:
        assert titles_of(api)[chat_session_id] == renamed
    # WHEN they start again but press Escape THEN nothing changes
    page.click(f"{row(chat_session_id)} button.rename")
    page.fill(f"{row(chat_session_id)} input.rename", "not this")
    page.press(f"{row(chat_session_id)} input.rename", "Escape")
    page.wait_for_selector(f"{row(chat_session_id)} a")
    assert listed(page)[0]["title"] == renamed
    with api_as(users_relay, user) as api:
        assert titles_of(api)[chat_session_id] == renamed


def test_delete_asks_first_then_erases_the_conversation_and_its_messages(user_page, users_relay):
    # GIVEN an open conversation with an answer
    page, user = user_page
    open_chat(page, users_relay, FAST)
    send(page, "soon gone")
    watch_until(page, lambda state: state["status"] == "complete")
    chat_session_id = session_of(page)
    page.wait_for_selector(row(chat_session_id))
    # WHEN the user asks to delete it, then cancels THEN nothing is erased
    page.click(f"{row(chat_session_id)} button.delete")
    page.wait_for_selector("#confirm-delete[open]")
    assert "soon gone" in page.text_content("#confirm-delete")
    assert page.evaluate("document.activeElement.id") == "confirm-delete-cancel"  # the safe choice first
    page.click("#confirm-delete-cancel")
    assert page.is_hidden("#confirm-delete")
    with api_as(users_relay, user) as api:
        assert chat_session_id in titles_of(api)
    # WHEN they delete it and confirm
    page.click(f"{row(chat_session_id)} button.delete")
    page.click("#confirm-delete-yes")
    page.wait_for_selector(row(chat_session_id), state="detached")
    # THEN the relay has neither it nor its messages, and the page is at a new chat
    with api_as(users_relay, user) as api:
        assert chat_session_id not in titles_of(api)
        assert api.get(f"/sessions/{chat_session_id}/messages").status_code == 404
    assert "session=" not in page.url and page.is_visible("#welcome")
    assert page.eval_on_selector("#messages", "(messages) => messages.children.length") == 0


def test_after_a_reload_the_picker_shows_the_sessions_own_provider_and_model(user_page, users_relay):
    # GIVEN a conversation answered by one model, then moved to another provider and model (PATCH), and one with no
    # answer yet
    page, user = user_page
    moved_to = "sim:first_token_ms=0,tokens_per_second=0,tokens=4"
    with api_as(users_relay, user) as api:
        moved = new_session(api, FAST)
        stream_chat(api, moved, "first")
        assert api.patch(f"/sessions/{moved}", json={"provider": "openai", "model": moved_to}).status_code == 200
        unanswered = new_session(api, "sim:echo=1")
    # WHEN each is opened THEN the picker shows the session's own, not its answers' or the default
    page.goto(f"{users_relay}/#session={moved}")
    page.wait_for_selector(".message.ai")
    page.wait_for_function("(model) => document.getElementById('model').value === model", arg=moved_to)
    assert (page.input_value("#provider"), page.input_value("#model")) == ("openai", moved_to)
    page.goto("about:blank")
    page.goto(f"{users_relay}/#session={unanswered}")
    page.wait_for_function("() => document.getElementById('model').value === 'sim:echo=1'")
    assert page.input_value("#provider") == "simulated"


def shown_answers(page: Any) -> list[dict[str, Any]]:
    return list(page.eval_on_selector_all(".message.ai", """(elements) => elements.map((element) => ({
        id: element.dataset.messageId, superseded: element.classList.contains('superseded'),
        text: element.querySelector('.content').checkVisibility(),
        regenerate: element.querySelector('button.regenerate').checkVisibility()}))"""))


def test_regenerate_answers_again_and_keeps_the_previous_answer_folded_and_in_its_metadata(user_page, users_relay):
    # GIVEN an answered message
    page, user = user_page
    open_chat(page, users_relay, FAST)
    send(page, "once more, please")
    first = watch_until(page, lambda state: state["status"] == "complete")[-1]
    assert shown_answers(page) == [{"id": first["messageId"], "superseded": False, "text": True, "regenerate": True}]
    # WHEN the user regenerates it
    page.click(f"{LAST_ANSWER} >> button.regenerate")
    again = watch_until(page, lambda state: state["messageId"] not in (None, first["messageId"])
                        and state["status"] == "complete")[-1]
    # THEN the relay answered the same message again and keeps the first answer, marked as replaced by the new one
    with api_as(users_relay, user) as api:
        stored = messages_of(api, session_of(page))
    assert [m["role"] for m in stored] == ["user", "ai", "ai"]
    assert stored[1]["messageId"] == first["messageId"] and stored[1]["metadata"]["supersededBy"] == again["messageId"]
    assert words(again["text"]) == words(stored[2]["content"])
    # ... and the page folds the first away, with Regenerate under the new one only; after a reload too
    expected = [{"id": first["messageId"], "superseded": True, "text": False, "regenerate": False},
                {"id": again["messageId"], "superseded": False, "text": True, "regenerate": True}]
    assert shown_answers(page) == expected
    page.reload()
    page.wait_for_selector(".message.ai >> nth=1")
    assert shown_answers(page) == expected
    page.click(".message.superseded >> button.fold")
    assert shown_answers(page)[0]["text"] is True


def usage_lines(page: Any) -> tuple[str, str]:
    return page.text_content("#usage-day"), page.text_content("#usage-month")


def test_the_usage_under_the_list_changes_after_each_turn(user_page, users_relay):
    page, user = user_page
    open_chat(page, users_relay, FAST)
    page.wait_for_selector("#usage-day", state="visible")
    before = usage_lines(page)
    assert before == ("Today: 0 tokens, 0 requests", "This month: 0 tokens, 0 requests")

    send(page, "count me")
    watch_until(page, lambda state: state["status"] == "complete")
    page.wait_for_function("(before) => document.getElementById('usage-day').textContent !== before", arg=before[0])

    with api_as(users_relay, user) as api:
        spent = api.get("/usage").json()
    tokens = spent["day"]["inputTokens"] + spent["day"]["outputTokens"]
    assert tokens > 0 and spent["day"]["requests"] == 1
    assert usage_lines(page) == (f"Today: {tokens:,} tokens, 1 request", f"This month: {tokens:,} tokens, 1 request")


def test_a_spent_token_budget_is_a_clear_error_that_says_when_it_starts_again(user_page, stack, dynamodb):
    # GIVEN a relay with a day's budget of 20 tokens
    page, _ = user_page
    with relay_server(dynamodb, WEB_DIRECTORY, users_by_header=True, limits_table_name=LIMITS_TABLE_NAME,
                      token_budget_per_day=20) as url:
        open_chat(page, url, "sim:first_token_ms=0,tokens_per_second=0,tokens=30")
        page.wait_for_selector("#usage-day", state="visible")
        assert page.text_content("#usage-day") == "Today: 0 of 20 tokens, 0 requests"
        # WHEN a turn spends past it (it finishes), and the user sends another
        send(page, "spend it")
        until_settled(page, 1)
        send(page, "and more")
        settled = until_settled(page, 2)
        page.wait_for_function("() => document.getElementById('usage-day').classList.contains('spent')")
        failure = page.eval_on_selector(f"{LAST_ANSWER} >> .failure", """(failure) => ({
            code: failure.querySelector('code').textContent, text: failure.querySelector('p').textContent,
            retry: failure.querySelector('button.retry') !== null})""")
        day = page.text_content("#usage-day")
    # THEN the refusal says what happened and when the budget starts again, with no Retry that would be refused
    assert [answer["status"] for answer in settled] == ["complete", "error"]
    assert failure["code"] == "budget_exceeded" and not failure["retry"]
    assert failure["text"].startswith("Your token budget is used up: you have used this day's budget of 20 tokens")
    assert re.search(r"\((at|on) .+ your time\)\.$", failure["text"]), failure["text"]
    # ... and so does the usage under the list
    assert re.fullmatch(r"Today: [\d,]+ of 20 tokens, 1 request\. Budget used up: it starts again (at|on) .+ your "
                        r"time\.", day), day
