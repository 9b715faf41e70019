"""The chat page's security headers: the local run serves them, and a host of web/ elsewhere sets the same.

The policy is written once, in web/index.html's ``<meta http-equiv="Content-Security-Policy">`` (which protects a
page whose host sets no headers), and so is the referrer policy (``<meta name="referrer">``). As headers, the
policy gains ``frame-ancestors 'none'``, which browsers ignore in a ``<meta>`` policy, so only a header stops
another site from framing the page.

``with_sources`` adds origins to the policy of an index.html as a deployer does: the relay's to ``connect-src``,
the attachments bucket's to ``connect-src`` (the page PUTs images there) and ``img-src`` (it shows them from
there). The local run serves its page so, with its S3's origin; the meta policy and the header say the same, since
a browser enforces both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser

__all__ = ["FRAME_ANCESTORS", "page_headers", "page_settings", "with_sources"]

FRAME_ANCESTORS = "frame-ancestors 'none'"
# The shipped policy's directives that a deployment widens, as index.html writes them.
CONNECT_SRC = "connect-src 'self'"
IMG_SRC = "img-src 'self' data:"


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


def with_sources(index_html: str, *, connect: Sequence[str] = (), images: Sequence[str] = ()) -> str:
    """``index_html`` with ``connect`` origins added to its policy's connect-src and ``images`` to its img-src."""
    for directive, origins in ((CONNECT_SRC, connect), (IMG_SRC, images)):
        if origins:
            index_html, found = re.subn(re.escape(directive), " ".join([directive, *origins]), index_html, count=1)
            if not found:
                raise ValueError(f"index.html's policy has no {directive!r} to add {', '.join(origins)} to")
    return index_html
