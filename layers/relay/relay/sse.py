"""Server-sent events, both ways (https://html.spec.whatwg.org/multipage/server-sent-events.html).

Reading a provider's stream: ``SSEDecoder`` takes bytes as they arrive and returns whole events. It splits lines on
CR, LF and CRLF only (never on U+2028, U+2029 or U+0085, which models emit), keeps a CR that ends one read to pair
it with an LF that starts the next, decodes UTF-8 per complete line (a character split across reads stays whole),
and dispatches what is left at EOF. No I/O.

Writing to the client: data is always one line of JSON; ``json.dumps`` escapes CR and LF, so no content can break
the framing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = bytearray()  # the start of a line whose end has not arrived yet
        self._skip_lf = False  # the last read ended in CR: an LF that starts the next is the same line break
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.unframed: list[str] = []  # lines that are no SSE field (some providers send bare JSON errors)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = chunk.endswith(b"\r")
        self._buffer += chunk
        if b"\n" not in chunk and b"\r" not in chunk:
            return []  # a long line arriving in many reads is split once, when its end comes
        # bytes.splitlines breaks on CR, LF and CRLF only (str.splitlines would also break on U+2028 and others).
        lines = self._buffer.splitlines(keepends=True)
        self._buffer = lines.pop() if not lines[-1].endswith((b"\n", b"\r")) else bytearray()
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[ServerSentEvent]:
        """At EOF: the last line and the last event, even without the blank line that should end them."""
        events = []
        if self._buffer:
            line, self._buffer = self._buffer, bytearray()
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name != "retry":
            self.unframed.append(line)
        return None


encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # one encoder, not one per call


def format_event(event: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {encode_json(data)}\n\n".encode()


def reasoning_event(text: str, offset: int, reasoning_offset: int) -> bytes:
    """A reasoning delta: its id is the answer's text offset and the reasoning's offset after it, both, so that a
    reconnecting client that last saw one resumes both (``parseInt`` of it is still the text offset)."""
    return f'id: {offset}:{reasoning_offset}\nevent: reasoning\ndata: {{"text":{encode_json(text)}}}\n\n'.encode()


def token_event(text: str, offset: int) -> bytes:
    """``format_event("token", {"text": text}, event_id=str(offset))``, on the hot path: one per token. The id is
    the character offset after the token, which a reconnecting client sends back as ``Last-Event-ID``."""
    return f'id: {offset}\nevent: token\ndata: {{"text":{encode_json(text)}}}\n\n'.encode()
