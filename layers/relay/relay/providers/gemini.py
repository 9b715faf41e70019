"""Google Gemini streaming (``POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse``).

Each ``data:`` chunk is a whole GenerateContentResponse: text in ``candidates[0].content.parts[].text``,
``finishReason`` on the last candidate (the terminal signal: there is no ``[DONE]``), ``usageMetadata`` on every
chunk (the last one counts). A blocked prompt has no candidates, only ``promptFeedback.blockReason``. A failure
after HTTP 200 can arrive as bare JSON without ``data:`` framing (handled in ``streaming.post_sse``).

Images: a ``parts`` entry each, ``inline_data`` (``mime_type`` and base64 ``data``), before the text. Every Gemini
model takes them but the first (gemini-1.0-pro) and the embedding and retrieval models.

Reasoning: a session's reasoning option becomes ``generationConfig.thinkingConfig`` (``thinkingBudget``, and
``includeThoughts`` so that the thoughts are sent); a thought summary then arrives as parts with ``thought: true``
before the answer's, counted in ``usageMetadata.thoughtsTokenCount``. A thought part without text (a bare
``thoughtSignature``) is skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay import config
from relay.errors import PROVIDER_BAD_REQUEST, PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, ReasoningDelta, TextDelta, Usage
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import error_detail, parse_json, sse_stream

# Gemini models that do not think (thinkingConfig is refused); the 2.5 models and later do.
NON_THINKING_MODELS = ("gemini-1", "gemini-2.0", "gemma")
TEXT_ONLY_MODELS = ("gemini-1.0-pro", "text-embedding", "embedding", "aqa")


class ChunkParser:
    def __init__(self, provider: str = "gemini") -> None:
        self.provider = provider
        self.finished = False

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]:
        chunk = parse_json(self.provider, data)
        if chunk.get("error"):
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {error_detail(chunk)}")
        events: list[ProviderEvent] = []
        candidates = chunk.get("candidates") or []
        block = (chunk.get("promptFeedback") or {}).get("blockReason")
        if not candidates and block:
            raise ProviderError(PROVIDER_BAD_REQUEST, f"{self.provider} blocked the prompt ({block})")
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or ():
                text = part.get("text")
                if text and isinstance(text, str):
                    events.append(ReasoningDelta(text) if part.get("thought") is True else TextDelta(text))
        usage = chunk.get("usageMetadata")
        if usage:
            thoughts = usage.get("thoughtsTokenCount")
            output = int(usage.get("candidatesTokenCount") or 0) + int(thoughts or 0)
            events.append(Usage(int(usage.get("promptTokenCount") or 0), output,
                                int(thoughts) if isinstance(thoughts, int) else None))
        if candidates and candidates[0].get("finishReason"):
            self.finished = True
            events.append(Finish(candidates[0]["finishReason"]))
        return events

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream without a finishReason")


ROLES = {"user": "user", "assistant": "model"}


def takes_images(model: str) -> bool:
    return not model.startswith(TEXT_ONLY_MODELS)


def _content(message: ChatMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"inline_data": {"mime_type": image.media_type, "data": image.base64}}
                                   for image in message.images]
    if message.content or not parts:
        parts.append({"text": message.content})
    return {"role": ROLES[message.role], "parts": parts}


def request_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [_content(m) for m in request.messages]}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    if request.reasoning is not None and reasoning_unsupported(request.model) is None:
        thinking = {"thinkingBudget": request.reasoning.budget, "includeThoughts": True}
        body["generationConfig"] = {"thinkingConfig": thinking}
    return body


def reasoning_unsupported(model: str) -> str | None:
    if model.startswith(NON_THINKING_MODELS):
        return f"{model} does not think: the reasoning option was left out"
    return None


class GeminiStreamGenerateContent:
    def __init__(
        self, http: httpx.AsyncClient, *, key: KeySource, base_url: str = config.DEFAULT_GEMINI_BASE_URL,
        name: str = "gemini",
    ) -> None:
        self.name = name
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._key = key

    def reasoning_unsupported(self, model: str) -> str | None:
        return reasoning_unsupported(model)

    def takes_images(self, model: str) -> bool:
        return takes_images(model)

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        url = f"{self._base_url}/v1beta/models/{request.model}:streamGenerateContent"
        return sse_stream(self._http, self.name, url, ChunkParser(self.name), key=self._key,
                          headers=lambda key: {"x-goog-api-key": key}, body=request_body(request),
                          params={"alt": "sse"}, exchange=request.exchange)
