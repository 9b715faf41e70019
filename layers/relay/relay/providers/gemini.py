"""Google Gemini streaming (``POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse``).

Each ``data:`` chunk is a whole GenerateContentResponse: text in ``candidates[0].content.parts[].text``,
``finishReason`` on the last candidate (the terminal signal: there is no ``[DONE]``), ``usageMetadata`` on every
chunk (the last one counts). A blocked prompt has no candidates, only ``promptFeedback.blockReason``. A failure
after HTTP 200 can arrive as bare JSON without ``data:`` framing (handled in ``streaming.post_sse``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay.errors import PROVIDER_BAD_REQUEST, PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.providers.base import ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import error_detail, parse_json, sse_stream

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


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
                if part.get("text") and not part.get("thought"):
                    events.append(TextDelta(part["text"]))
        usage = chunk.get("usageMetadata")
        if usage:
            output = int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0)
            events.append(Usage(int(usage.get("promptTokenCount") or 0), output))
        if candidates and candidates[0].get("finishReason"):
            self.finished = True
            events.append(Finish(candidates[0]["finishReason"]))
        return events

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream without a finishReason")


def request_body(request: ChatRequest) -> dict[str, Any]:
    roles = {"user": "user", "assistant": "model"}
    body: dict[str, Any] = {
        "contents": [{"role": roles[m.role], "parts": [{"text": m.content}]} for m in request.messages],
    }
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    return body


class GeminiStreamGenerateContent:
    def __init__(
        self, http: httpx.AsyncClient, *, key: KeySource, base_url: str = DEFAULT_BASE_URL, name: str = "gemini"
    ) -> None:
        self.name = name
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._key = key

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        url = f"{self._base_url}/v1beta/models/{request.model}:streamGenerateContent"
        return sse_stream(self._http, self.name, url, ChunkParser(self.name), key=self._key,
                          headers=lambda key: {"x-goog-api-key": key}, body=request_body(request),
                          params={"alt": "sse"}, exchange=request.exchange)
