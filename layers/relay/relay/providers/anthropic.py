"""Anthropic Messages streaming (``POST {base_url}/v1/messages`` with ``stream: true``).

Events: ``message_start`` (input usage), ``content_block_delta`` (``text_delta``), ``message_delta``
(``stop_reason``; ``usage.output_tokens`` is cumulative, not to be added), ``message_stop`` (terminal), ``error``
(after HTTP 200). ``ping`` and event types added later are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay.errors import PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.providers.base import ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import error_detail, parse_json, sse_stream

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096


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
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
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


def request_body(request: ChatRequest, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": max_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
    }
    if request.system:
        body["system"] = request.system
    return body


class AnthropicMessages:
    def __init__(
        self, http: httpx.AsyncClient, *, key: KeySource, base_url: str = DEFAULT_BASE_URL,
        max_tokens: int = DEFAULT_MAX_TOKENS, name: str = "anthropic",
    ) -> None:
        self.name = name
        self._http = http
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._key = key
        self._max_tokens = max_tokens

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        return sse_stream(self._http, self.name, self._url, EventParser(self.name), key=self._key,
                          headers=lambda key: {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION},
                          body=request_body(request, self._max_tokens), exchange=request.exchange)
