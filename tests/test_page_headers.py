"""The page's security headers (devtools/page_headers.py): written once, in index.html's <meta> elements."""

import httpx
import pytest

from devtools.local_run import WEB_DIRECTORY
from devtools.page_headers import page_headers, page_settings, with_sources

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


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_a_deployments_origins_widen_connect_src_and_img_src_alone():
    bucket = "https://chat-attachments.s3.eu-west-1.amazonaws.com"
    widened = with_sources(SHIPPED, connect=["https://relay.example", bucket], images=[bucket])

    before = directives(page_headers(SHIPPED)["Content-Security-Policy"])
    after = directives(page_headers(widened)["Content-Security-Policy"])
    assert after["connect-src"] == ["'self'", "https://relay.example", bucket]
    assert after["img-src"] == ["'self'", "data:", bucket]
    assert {name: values for name, values in after.items() if name not in ("connect-src", "img-src")} == {
        name: values for name, values in before.items() if name not in ("connect-src", "img-src")}
    assert with_sources(SHIPPED) == SHIPPED


def test_a_policy_without_the_directive_to_widen_is_an_error_not_a_silent_miss():
    with pytest.raises(ValueError, match="connect-src"):
        with_sources("""<meta http-equiv="Content-Security-Policy" content="default-src 'self'">""",
                     connect=["https://relay.example"])


def test_the_local_run_serves_its_page_with_its_buckets_origin_to_upload_to_and_show_from(stack):
    # The page PUTs images to the local S3 (moto, another port of loopback) and shows them from there: both the
    # header and the page's own <meta> policy must allow that origin, since a browser enforces both.
    response = httpx.get(f"{stack.url}/")
    header = directives(response.headers["Content-Security-Policy"])
    meta = directives(page_settings(response.text)["content-security-policy"])
    shipped = directives(page_headers(SHIPPED)["Content-Security-Policy"])

    for policy in (header, meta):
        assert policy["connect-src"] == ["'self'", stack.dynamodb.url]
        assert policy["img-src"] == ["'self'", "data:", stack.dynamodb.url]
    assert {name: values for name, values in header.items() if name not in ("connect-src", "img-src")} == {
        name: values for name, values in shipped.items() if name not in ("connect-src", "img-src")}
    assert httpx.get(f"{stack.url}/chat.js").headers["Content-Security-Policy"] == response.headers[
        "Content-Security-Policy"]
