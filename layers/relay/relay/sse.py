"""Server-sent events as the relay writes them (https://html.spec.whatwg.org/multipage/server-sent-events.html).

Data is always one line of JSON: ``json.dumps`` escapes CR and LF, so no content can break the framing.
"""

from __future__ import annotations

import json
from typing import Any


def format_event(event: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {payload}\n\n".encode()
