"""Server-sent events, both ways (https://html.spec.whatwg.org/multipage/server-sent-events.html).

Reading a provider's stream: ``SSEDecoder`` takes bytes as they arrive and returns whole events. It splits lines on
CR, LF and CRLF only (never on U+2028, U+2029 or U+0085, which models emit), keeps a CR that ends one read to pair
it with an LF that starts the next, decodes UTF-8 per complete line (a character split across reads stays whole),
and dispatches what is left at EOF. No I/O. What one stream can make it hold is bounded: a line over
``MAX_LINE_BYTES`` or an event whose data lines add up to over ``MAX_EVENT_BYTES`` raises ``provider_error`` (the
events before it are returned first), and lines that are no SSE field are kept only up to ``MAX_UNFRAMED_BYTES``.

Writing to the client: data is always one line of JSON; ``json.dumps`` escapes CR and LF, so no content can break
the framing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay.errors import PROVIDER_ERROR, ProviderError

# The largest legitimate event is the Responses API's response.completed (or output_text.done), which repeats the
# whole answer: 128,000 output tokens (the most a current model writes) at ~4 characters each, up to 6 bytes a
# character as JSON escapes, is ~3 MB. 16 MiB is five times that, and bounds what one stream makes the relay hold
# (with its decoded copies, ~50 MB of the function's 1,024).
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_EVENT_BYTES = 16 * 1024 * 1024
MAX_UNFRAMED_BYTES = 64 * 1024  # bare JSON errors are under 1 KB; past this, lines that are no field are dropped


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


class SSEDecoder:
    def __init__(self, source: str = "the provider", *, max_line_bytes: int = MAX_LINE_BYTES,
                 max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._source = source  # who sent the stream, for the error's message
        self._max_line_bytes = max_line_bytes
        self._max_event_bytes = max_event_bytes
        self._buffer = bytearray()  # the start of a line whose end has not arrived yet
        self._skip_lf = False  # the last read ended in CR: an LF that starts the next is the same line break
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0
        self._id: str | None = None
        self._failure: ProviderError | None = None  # a limit was passed
        self.unframed: list[str] = []  # lines that are no SSE field (some providers send bare JSON errors)
        self._unframed_bytes = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._failure is not None:
            raise self._failure
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = chunk.endswith(b"\r")
        self._buffer += chunk
        if b"\n" not in chunk and b"\r" not in chunk:
            if len(self._buffer) > self._max_line_bytes:
                self._buffer, self._failure = bytearray(), self._line_too_long()
                raise self._failure
            return []  # a long line arriving in many reads is split once, when its end comes
        # bytes.splitlines breaks on CR, LF and CRLF only (str.splitlines would also break on U+2028 and others).
        lines = self._buffer.splitlines(keepends=True)
        self._buffer = lines.pop() if not lines[-1].endswith((b"\n", b"\r")) else bytearray()
        events: list[ServerSentEvent] = []
        try:
            for line in lines:
                line = line.rstrip(b"\r\n")
                if len(line) > self._max_line_bytes:
                    raise self._line_too_long()
                event = self._line(line)
                if event is not None:
                    events.append(event)
            if len(self._buffer) > self._max_line_bytes:
                raise self._line_too_long()
        except ProviderError as exc:
            # Over a limit, the stream is done: what is held goes, and every later call raises. The events before
            # it in this read still reach the client and the store first.
            self._buffer, self._data, self._failure = bytearray(), [], exc
            if not events:
                raise
        return events

    def finish(self) -> list[ServerSentEvent]:
        """At EOF: the last line and the last event, even without the blank line that should end them."""
        if self._failure is not None:
            raise self._failure
        events = []
        if self._buffer:
            line, self._buffer = self._buffer, bytearray()
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line_too_long(self) -> ProviderError:
        return ProviderError(PROVIDER_ERROR, f"{self._source} sent a stream line over the relay's limit of "
                                             f"{self._max_line_bytes:,} bytes")

    def _line(self, raw: bytes | bytearray) -> ServerSentEvent | None:
        if not raw:
            if not self._data and not self._event:
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._data_bytes = "", [], 0
            return event
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_bytes += len(raw)
            if self._data_bytes > self._max_event_bytes:
                raise ProviderError(PROVIDER_ERROR, f"{self._source} sent a stream event over the relay's limit of "
                                                    f"{self._max_event_bytes:,} bytes")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name != "retry" and self._unframed_bytes + len(raw) <= MAX_UNFRAMED_BYTES:
            self._unframed_bytes += len(raw)
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


def token_event(text: str, offset: int, reasoning_offset: int) -> bytes:
    """``format_event("token", {"text": text}, event_id=...)``, on the hot path: one per token. The id is the
    character offset after the token, which a reconnecting client sends back as ``Last-Event-ID``; once the answer
    has reasoning, the reasoning's offset too (``<text>:<reasoning>``, as a reasoning event's), so that reasoning a
    provider sends between text deltas is not lost to a client that resumes from a token's id."""
    position = f"{offset}:{reasoning_offset}" if reasoning_offset else str(offset)
    return f'id: {position}\nevent: token\ndata: {{"text":{encode_json(text)}}}\n\n'.encode()
