"""The Vercel AI SDK's UI message stream protocol, v1, so that a React app can point ``useChat`` at the relay.

Asked for with ``?protocol=ai-sdk`` on ``POST /chat/stream``. The request is the body the AI SDK's
``DefaultChatTransport`` posts (``{id, messages, trigger, messageId}`` plus any ``body`` the app adds): the chat
session is ``chatSessionId`` when the app sends one, else ``id``; the new content is the text of the last message,
which must be the user's, and its ``file`` parts with an image media type name the images it carries (uploaded first,
``url`` ``attachment:<attachmentId>``: the body stays small); the history the provider sees is the stored one, not
the client's copy. The answer is
``start``, ``text-start``, ``text-delta``..., ``text-end``, ``finish`` or ``error``, then ``data: [DONE]``
(https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol). The model's reasoning is a reasoning part before the text:
``reasoning-start``, ``reasoning-delta``..., ``reasoning-end`` once the answer's text begins (reasoning that comes
later opens a part of its own).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from relay import sse
from relay.errors import RequestRejected
from relay.events import Done, Failed, Reasoning, Started, Tokens, TurnEvent

PROTOCOL = "ai-sdk"
ATTACHMENT_SCHEME = "attachment:"  # a file part's url naming an image uploaded to the relay
HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
DONE = b"data: [DONE]\n\n"

# Provider finish reasons in the AI SDK's words; anything else is "other".
FINISH_REASONS = {
    "stop": "stop", "end_turn": "stop", "stop_sequence": "stop", "completed": "stop",
    "length": "length", "max_tokens": "length", "max_output_tokens": "length",
    "content_filter": "content-filter", "safety": "content-filter", "recitation": "content-filter",
    "guardrail_intervened": "content-filter", "blocklist": "content-filter", "prohibited_content": "content-filter",
    "tool_calls": "tool-calls", "tool_use": "tool-calls",
}


def new_message(body: dict[str, Any]) -> tuple[Any, str, str | None, list[str] | None]:
    """``(chatSessionId, content, clientMessageId, attachments)`` from a ``DefaultChatTransport`` body. The last
    message's id doubles as the idempotency key, so a retried submit does not ask the provider twice."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise RequestRejected(422, "validation_error", "messages must be a non-empty list of UI messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise RequestRejected(422, "validation_error", "the last message must be the user's new message "
                                                       "(regenerating an answer is not supported)")
    parts = last.get("parts")
    if not isinstance(parts, list):
        raise RequestRejected(422, "validation_error", "the last message must have a list of parts")
    texts = [part.get("text") for part in parts if isinstance(part, dict) and part.get("type") == "text"]
    if not all(isinstance(text, str) for text in texts):
        raise RequestRejected(422, "validation_error", "a text part's text must be a string")
    message_id = last.get("id") if isinstance(last.get("id"), str) else None
    files = [part for part in parts if isinstance(part, dict) and part.get("type") == "file"]
    attachments = [_attachment_id(part) for part in files] or None
    return body.get("chatSessionId", body.get("id")), "".join(texts), message_id, attachments


def _attachment_id(part: dict[str, Any]) -> str:
    """The image a ``file`` part names: an upload to the relay, by ``attachment:<attachmentId>``. Files are not
    taken inline (a data URL would take the body past its 64 KiB), nor fetched from elsewhere."""
    media_type, url = part.get("mediaType"), part.get("url")
    if not isinstance(media_type, str) or not media_type.startswith("image/"):
        raise RequestRejected(422, "validation_error", "a file part must be an image (PNG, JPEG, WebP or GIF)")
    if not isinstance(url, str) or not url.startswith(ATTACHMENT_SCHEME):
        raise RequestRejected(422, "validation_error", "a file part's url must name an upload to the relay, "
                                                       f"{ATTACHMENT_SCHEME}<attachmentId> (uploadAttachment)")
    return url.removeprefix(ATTACHMENT_SCHEME)


async def ui_message_stream(events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]:
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
        yield DONE
    finally:
        await events.aclose()


def _ending(event: Done | Failed) -> bytes:
    if isinstance(event, Failed):
        return _chunk({"type": "error", "errorText": f"{event.code}: {event.message}"})
    metadata: dict[str, Any] = {"usage": event.usage(), "ttftMs": event.ttft_ms,
                                "tokensPerSecond": event.tokens_per_second}
    if event.time_to_first_reasoning_ms is not None:
        metadata["timeToFirstReasoningMs"] = event.time_to_first_reasoning_ms
    reason = FINISH_REASONS.get((event.finish_reason or "stop").lower(), "other")
    return _chunk({"type": "finish", "finishReason": reason, "messageMetadata": metadata})


def _chunk(data: dict[str, Any]) -> bytes:
    return b"data: " + sse.encode_json(data).encode() + b"\n\n"
