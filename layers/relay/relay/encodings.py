"""The wire encodings of a turn's events, behind one small protocol: our SSE events, plain text, and the Vercel AI
SDK's UI message stream.

    Encoding.media_type, .headers    what the response says it is
    Encoding.encode(events)          the turn's events (relay/events.py) as the bytes to send, closing them at the end

``for_request`` picks one from what the request asks for: ``?protocol=ai-sdk`` the UI message stream, ``Accept:
text/plain`` (without ``text/event-stream``) plain text, anything else our SSE events. The events' payloads are
described in relay/api.py (``StartEvent`` ... ``ErrorEvent``, ``UiMessageChunk``), and so in the OpenAPI document.

The AI SDK's UI message stream protocol v1 (https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol) is ``start``,
``text-start``, ``text-delta``..., ``text-end``, ``finish`` or ``error``, then ``data: [DONE]``. The model's
reasoning is a reasoning part before the text: ``reasoning-start``, ``reasoning-delta``..., ``reasoning-end`` once
the answer's text begins (reasoning that comes later opens a part of its own).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

from relay import sse
from relay.errors import VALIDATION_ERROR, RequestRejected
from relay.events import Done, Failed, Reasoning, Started, Tokens, TurnEvent

__all__ = ["AI_SDK", "AI_SDK_FINISH_REASONS", "Encoding", "PlainText", "SseEvents", "UiMessageStream",
           "for_request"]

AI_SDK = "ai-sdk"  # ?protocol=ai-sdk
SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8"

# Provider finish reasons in the AI SDK's words; anything else is "other".
AI_SDK_FINISH_REASONS = {
    "stop": "stop", "end_turn": "stop", "stop_sequence": "stop", "completed": "stop",
    "length": "length", "max_tokens": "length", "max_output_tokens": "length",
    "content_filter": "content-filter", "safety": "content-filter", "recitation": "content-filter",
    "guardrail_intervened": "content-filter", "blocklist": "content-filter", "prohibited_content": "content-filter",
    "tool_calls": "tool-calls", "tool_use": "tool-calls",
}


class Encoding(Protocol):
    @property
    def media_type(self) -> str: ...

    @property
    def done_before_close(self) -> bool:
        """Whether the client learns that the answer is over from an event, before the stream closes: only then
        may the stream stay open after it (for a model-made title) without holding the client up."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def encode(self, events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]: ...


def for_request(protocol: str | None, accept: str) -> Encoding:
    """The encoding a chat request asks for: ``?protocol=`` first, then its ``Accept`` header."""
    if protocol == AI_SDK:
        return UiMessageStream()
    if protocol is not None:
        raise RequestRejected(422, VALIDATION_ERROR, f"protocol must be {AI_SDK!r} or absent")
    if "text/plain" in accept and "text/event-stream" not in accept:
        return PlainText()
    return SseEvents()


class SseEvents:
    """Our SSE events. A token's id is the text's offset after it (as it always was); a reasoning event's is
    ``<text offset>:<reasoning offset>``, so the id a client last saw, either kind, resumes both. A resume starts
    from the offsets it resumes at."""

    media_type = SSE_MEDIA_TYPE
    headers: Mapping[str, str] = {}
    done_before_close = True  # done or error

    def __init__(self, offset: int = 0, reasoning_offset: int = 0) -> None:
        self.offset = offset
        self.reasoning_offset = reasoning_offset

    async def encode(self, events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]:
        offset, reasoning_offset = self.offset, self.reasoning_offset
        try:
            async for event in events:
                match event:
                    case Tokens(texts):
                        frames = []
                        for text in texts:
                            offset += len(text)
                            frames.append(sse.token_event(text, offset, reasoning_offset))
                        yield b"".join(frames)
                    case Reasoning(texts):
                        frames = []
                        for text in texts:
                            reasoning_offset += len(text)
                            frames.append(sse.reasoning_event(text, offset, reasoning_offset))
                        yield b"".join(frames)
                    case Started():
                        yield sse.format_event("start", {"userMessageId": event.user_message_id,
                                                         "messageId": event.message_id})
                    case Done():
                        yield sse.format_event("done", {"messageId": event.message_id,
                                                        "finishReason": event.finish_reason, **_done_metrics(event)})
                    case Failed(code, message):
                        yield sse.format_event("error", {"code": code, "message": message})
        finally:
            await events.aclose()


class PlainText:
    """The answer's text alone, never the reasoning; a failure is appended as a last ``[error code: message]`` line,
    since plain text has no event channel."""

    media_type = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = {}
    done_before_close = False  # the text ends when the stream does

    async def encode(self, events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]:
        try:
            async for event in events:
                if isinstance(event, Tokens):
                    yield "".join(event.texts).encode()
                elif isinstance(event, Failed):
                    yield f"\n\n[error {event.code}: {event.message}]\n".encode()
        finally:
            await events.aclose()


class UiMessageStream:
    """The AI SDK's UI message stream protocol, v1: what ``useChat`` reads."""

    media_type = SSE_MEDIA_TYPE
    headers: Mapping[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}
    # The AI SDK skips [DONE] and reads on until the stream closes: useChat's status turns "ready" only then.
    done_before_close = False
    DONE = b"data: [DONE]\n\n"

    async def encode(self, events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]:
        text_id: str | None = None  # the open text part, once the answer's text has begun
        reasoning_id: str | None = None  # the open reasoning part, while the model reasons
        reasoning_parts = 0
        message_id = "text"
        try:
            async for event in events:
                frames = []
                match event:
                    case Started():
                        message_id = event.message_id
                        frames.append(_chunk({"type": "start", "messageId": event.message_id}))
                    case Reasoning(texts):
                        if reasoning_id is None:
                            reasoning_parts += 1
                            reasoning_id = f"{message_id}-reasoning-{reasoning_parts}"
                            frames.append(_chunk({"type": "reasoning-start", "id": reasoning_id}))
                        frames.extend(_chunk({"type": "reasoning-delta", "id": reasoning_id, "delta": text})
                                      for text in texts)
                    case Tokens(texts):
                        if reasoning_id is not None:  # the reasoning is done when the answer begins
                            frames.append(_chunk({"type": "reasoning-end", "id": reasoning_id}))
                            reasoning_id = None
                        if text_id is None:
                            text_id = message_id
                            frames.append(_chunk({"type": "text-start", "id": text_id}))
                        frames.extend(_chunk({"type": "text-delta", "id": text_id, "delta": text}) for text in texts)
                    case Done() | Failed():
                        frames.extend(_chunk({"type": f"{kind}-end", "id": part_id})
                                      for kind, part_id in (("reasoning", reasoning_id), ("text", text_id)) if part_id)
                        frames.append(_ending(event))
                yield b"".join(frames)
            yield self.DONE
        finally:
            await events.aclose()


def _done_metrics(event: Done) -> dict[str, Any]:
    """What ``done`` (and the AI SDK's ``finish``, as message metadata) tells of the turn; the time to the first
    reasoning only where the model reasoned."""
    metrics: dict[str, Any] = {"usage": event.usage(), "ttftMs": event.ttft_ms,
                               "tokensPerSecond": event.tokens_per_second}
    if event.time_to_first_reasoning_ms is not None:
        metrics["timeToFirstReasoningMs"] = event.time_to_first_reasoning_ms
    return metrics


def _ending(event: Done | Failed) -> bytes:
    if isinstance(event, Failed):
        return _chunk({"type": "error", "errorText": f"{event.code}: {event.message}"})
    reason = AI_SDK_FINISH_REASONS.get((event.finish_reason or "stop").lower(), "other")
    return _chunk({"type": "finish", "finishReason": reason, "messageMetadata": _done_metrics(event)})


def _chunk(data: dict[str, Any]) -> bytes:
    return b"data: " + sse.encode_json(data).encode() + b"\n\n"
