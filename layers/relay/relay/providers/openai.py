"""OpenAI Chat Completions streaming (``POST {base_url}/chat/completions`` with ``stream: true``).

Wire format: ``data: {chunk}`` lines ending with ``data: [DONE]``; with ``stream_options.include_usage`` the last
chunk has ``choices: []`` and the usage. An error after HTTP 200 is a ``data:`` line whose JSON has ``error``.
Azure OpenAI speaks the same format with a few quirks (chunks with empty ``choices`` or no ``delta``), handled here.
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

DONE = "[DONE]"


class ChunkParser:
    """Turns the ``data`` of each SSE event into normalised events. No I/O."""

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider
        self.finished = False

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]:
        if data == DONE:
            self.finished = True
            return []
        chunk = parse_json(self.provider, data)
        if chunk.get("error"):
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {error_detail(chunk)}")
        return _events_of(chunk)

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream before [DONE]")


def _events_of(chunk: dict[str, Any]) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            events.append(TextDelta(content))
        if choice.get("finish_reason"):
            events.append(Finish(choice["finish_reason"]))
    usage = chunk.get("usage")
    if usage:
        events.append(Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)))
    return events


def request_body(request: ChatRequest, *, model: bool = True) -> dict[str, Any]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role, "content": m.content} for m in request.messages]
    body: dict[str, Any] = {"model": request.model} if model else {}
    return {**body, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}


class OpenAIChatCompletions:
    """OpenAI's API, any OpenAI-compatible server, and Azure OpenAI (``azure_api_version`` for the classic
    deployment URL, whose model is in the path and key in ``api-key``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        name: str,
        base_url: str,
        key: KeySource,
        azure_api_version: str | None = None,
        azure: bool = False,
    ) -> None:
        self.name = name
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._key = key
        self._azure = azure or azure_api_version is not None
        self._api_version = azure_api_version

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        if self._api_version:
            url = f"{self._base_url}/openai/deployments/{request.model}/chat/completions"
            body, params = request_body(request, model=False), {"api-version": self._api_version}
        else:
            url, body, params = f"{self._base_url}/chat/completions", request_body(request), None
        return sse_stream(self._http, self.name, url, ChunkParser(self.name), key=self._key, headers=self._headers,
                          body=body, params=params, exchange=request.exchange)

    def _headers(self, key: str) -> dict[str, str]:
        return {"api-key": key} if self._azure else {"Authorization": f"Bearer {key}"}
