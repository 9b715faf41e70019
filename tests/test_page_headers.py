"""The page's security headers (devtools/page_headers.py): written once, in index.html's <meta> elements."""

from devtools.local_run import WEB_DIRECTORY
from devtools.page_headers import page_headers, page_settings

SHIPPED = (WEB_DIRECTORY / "index.html").read_text()


def test_the_header_policy_is_the_pages_own_with_frame_ancestors_added():
    html = """<head><meta http-equiv="Content-Security-Policy" content="default-src 'self';
        connect-src 'self' https://relay.example;"><meta name="referrer" content="strict-origin"></head>"""

    assert page_headers(html) == {
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' https://relay.example; "
                                   "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin",
    }


def test_the_shipped_policy_runs_no_inline_or_evaluated_script_and_loads_from_nowhere_else():
    policy = page_headers(SHIPPED)["Content-Security-Policy"]
    directives = {name: values for name, *values in (part.split() for part in policy.split(";"))}

    assert directives["default-src"] == directives["script-src"] == directives["style-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["connect-src"] == ["'self'"]  # the shipped relay-url is empty: the page's own origin
    for name in ("frame-ancestors", "base-uri", "form-action", "object-src"):
        assert directives[name] == ["'none'"], name
    assert "unsafe" not in policy


def test_the_shipped_page_sets_its_relay_and_image_settings_empty():
    settings = page_settings(SHIPPED)

    assert (settings["relay-url"], settings["relay-allowlist"], settings["image-origins"]) == ("", "", "")
    assert settings["referrer"] == "no-referrer"
