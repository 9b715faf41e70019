"""OpenAI Responses streaming (``POST {base_url}/responses`` with ``stream: true``).

Each event is ``event: <type>`` + ``data: {json}``; there is no ``[DONE]``. Text comes in
``response.output_text.delta``; the stream ends with ``response.completed``, ``response.incomplete`` (both carry
the usage) or ``response.failed``; ``error`` can arrive after HTTP 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay.errors import PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.providers.base import ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import parse_json, sse_stream


class EventParser:
    def __init__(self, provider: str = "openai-responses") -> None:
        self.provider = provider
        self.finished = False

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]:
        payload = parse_json(self.provider, data)
        kind = payload.get("type") or event
        if kind == "response.output_text.delta":
            return [TextDelta(payload["delta"])] if payload.get("delta") else []
        if kind in ("response.completed", "response.incomplete"):
            self.finished = True
            response = payload.get("response") or {}
            reason = "stop" if kind == "response.completed" else (
                (response.get("incomplete_details") or {}).get("reason") or "incomplete")
            usage = response.get("usage") or {}
            events: list[ProviderEvent] = [Finish(reason)]
            if usage:
                events.append(Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)))
            return events
        if kind == "response.failed":
            error = (payload.get("response") or {}).get("error") or {}
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed: {str(error.get('message'))[:200]}")
        if kind == "error":
            message = str(payload.get("message"))[:200]
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {message}")
        return []

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream before response.completed")


def request_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "input": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "store": False,
    }
    if request.system:
        body["instructions"] = request.system
    return body


class OpenAIResponses:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, key: KeySource, name: str = "openai-responses"):
        self.name = name
        self._http = http
        self._url = base_url.rstrip("/") + "/responses"
        self._key = key

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        return sse_stream(self._http, self.name, self._url, EventParser(self.name), key=self._key,
                          headers=lambda key: {"Authorization": f"Bearer {key}"}, body=request_body(request),
                          exchange=request.exchange)
