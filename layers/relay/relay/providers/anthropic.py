"""Anthropic Messages streaming (``POST {base_url}/v1/messages`` with ``stream: true``).

Events: ``message_start`` (input usage), ``content_block_delta`` (``text_delta``), ``message_delta``
(``stop_reason``; ``usage.output_tokens`` is cumulative, not to be added), ``message_stop`` (terminal), ``error``
(after HTTP 200). ``ping`` and event types added later are ignored.

Images: a user message's content becomes a list of blocks, each image a base64 ``image`` block before the text, as
Anthropic advises. Every Claude model from Claude 3 on takes them, but Claude 3.5 Haiku.

Reasoning (extended thinking, asked for with ``thinking: {type: enabled, budget_tokens}``): a ``thinking`` content
block before the text, its ``thinking_delta`` events the reasoning, closed by a ``signature_delta`` (kept, never shown);
a ``redacted_thinking`` block arrives whole and encrypted (noted, never shown). Its tokens are part of
``output_tokens``, with no count of their own. Other block and delta types are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from relay import config
from relay.errors import PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    ReasoningRedacted,
    ReasoningSignature,
    TextDelta,
    Usage,
)
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import error_detail, parse_json, sse_stream
from relay.reasoning import ReasoningOption

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version this module's parser is written against
# Claude models that cannot think (the API refuses a thinking parameter); every later model can, from
# claude-3-7-sonnet on.
NON_THINKING_MODELS = ("claude-2", "claude-instant", "claude-3-haiku", "claude-3-opus", "claude-3-sonnet",
                       "claude-3-5-")

# Claude models that take no images (the API refuses an image block).
TEXT_ONLY_MODELS = ("claude-2", "claude-instant", "claude-3-5-haiku")

# A content_block_delta's type → the field that holds its value, and what it is.
DELTAS: dict[Any, tuple[str, Callable[[str], ProviderEvent]]] = {
    "text_delta": ("text", TextDelta),
    "thinking_delta": ("thinking", ReasoningDelta),
    "signature_delta": ("signature", ReasoningSignature),
}


class EventParser:
    """Turns each SSE event into normalised events. No I/O."""

    def __init__(self, provider: str = "anthropic") -> None:
        self.provider = provider
        self.finished = False
        self._input_tokens = 0
        self._output_tokens = 0

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]:
        payload = parse_json(self.provider, data) if data else {}
        kind = payload.get("type") or event
        if kind == "message_start":
            usage = (payload.get("message") or {}).get("usage") or {}
            self._input_tokens = int(usage.get("input_tokens") or 0)
            self._output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "redacted_thinking":
                return [ReasoningRedacted()]
            if block.get("type") == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
                return [ReasoningDelta(block["thinking"])]
        elif kind == "content_block_delta":
            return _delta_events(payload.get("delta") or {})
        elif kind == "message_delta":
            usage = payload.get("usage") or {}
            self._input_tokens = int(usage.get("input_tokens") or self._input_tokens)
            self._output_tokens = int(usage.get("output_tokens") or self._output_tokens)
            events: list[ProviderEvent] = [Usage(self._input_tokens, self._output_tokens)]
            reason = (payload.get("delta") or {}).get("stop_reason")
            return [*events, Finish(reason)] if reason else events
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {error_detail(payload)}")
        return []

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream before message_stop")


def _delta_events(delta: dict[str, Any]) -> list[ProviderEvent]:
    field, event = DELTAS.get(delta.get("type"), ("", None))
    value = delta.get(field)
    if event is TextDelta and value is not None and not isinstance(value, str):
        return [TextDelta(value)]  # answer text of another shape is malformed, never skipped: provider_error
    return [event(value)] if event is not None and isinstance(value, str) and value else []


def takes_thinking(model: str) -> bool:
    """Whether a Claude model can think (also for Claude on Bedrock, by the name after ``anthropic.``)."""
    return not model.startswith(NON_THINKING_MODELS)


def reasoning_unsupported(model: str) -> str | None:
    if takes_thinking(model):
        return None
    return f"{model} has no extended thinking: the reasoning option was left out"


def thinking(reasoning: ReasoningOption, max_tokens: int) -> tuple[dict[str, Any], int]:
    """The thinking parameter, and the max_tokens that leaves the answer its own ``max_tokens``: the budget is
    part of max_tokens, and must be less than it."""
    return {"type": "enabled", "budget_tokens": reasoning.budget}, reasoning.budget + max_tokens


def takes_images(model: str) -> bool:
    """Whether a Claude model takes images (also for Claude on Bedrock, by the name after ``anthropic.``)."""
    return not model.startswith(TEXT_ONLY_MODELS)


def _message(message: ChatMessage) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64}}
        for image in message.images]
    if message.content:  # an empty text block is refused
        blocks.append({"type": "text", "text": message.content})
    return {"role": message.role, "content": blocks}


def request_body(request: ChatRequest, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": max_tokens,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
    }
    if request.system:
        body["system"] = request.system
    if request.reasoning is not None and takes_thinking(request.model):
        body["thinking"], body["max_tokens"] = thinking(request.reasoning, max_tokens)
    return body


class AnthropicMessages:
    def __init__(
        self, http: httpx.AsyncClient, *, key: KeySource, base_url: str = config.DEFAULT_ANTHROPIC_BASE_URL,
        max_tokens: int = config.DEFAULT_ANTHROPIC_MAX_TOKENS, name: str = "anthropic",
    ) -> None:
        self.name = name
        self._http = http
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._key = key
        self._max_tokens = max_tokens

    def reasoning_unsupported(self, model: str) -> str | None:
        return reasoning_unsupported(model)

    def takes_images(self, model: str) -> bool:
        return takes_images(model)

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        return sse_stream(self._http, self.name, self._url, EventParser(self.name), key=self._key,
                          headers=lambda key: {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION},
                          body=request_body(request, self._max_tokens), exchange=request.exchange)
