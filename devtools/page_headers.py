"""The chat page's security headers: the local run serves them, and a host of web/ elsewhere sets the same.

The policy is written once, in web/index.html's ``<meta http-equiv="Content-Security-Policy">`` (which protects a
page whose host sets no headers), and so is the referrer policy (``<meta name="referrer">``). As headers, the
policy gains ``frame-ancestors 'none'``, which browsers ignore in a ``<meta>`` policy, so only a header stops
another site from framing the page.
"""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["FRAME_ANCESTORS", "page_headers", "page_settings"]

FRAME_ANCESTORS = "frame-ancestors 'none'"


class _MetaReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.settings: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        attributes = dict(attrs)
        name = attributes.get("name") or attributes.get("http-equiv")
        if name:
            self.settings[name.lower()] = " ".join((attributes.get("content") or "").split())


def page_settings(index_html: str) -> dict[str, str]:
    """The page's ``<meta>`` values by name (or ``http-equiv``, lower case), whitespace collapsed."""
    reader = _MetaReader()
    reader.feed(index_html)
    return reader.settings


def page_headers(index_html: str) -> dict[str, str]:
    """The headers every file of the page is served with."""
    settings = page_settings(index_html)
    policy = settings["content-security-policy"].rstrip("; ")
    return {
        "Content-Security-Policy": f"{policy}; {FRAME_ANCESTORS}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": settings["referrer"],
    }
