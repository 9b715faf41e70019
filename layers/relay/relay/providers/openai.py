"""OpenAI Chat Completions streaming (``POST {base_url}/chat/completions`` with ``stream: true``).

Wire format: ``data: {chunk}`` lines ending with ``data: [DONE]``; with ``stream_options.include_usage`` the last
chunk has ``choices: []`` and the usage. An error after HTTP 200 is a ``data:`` line whose JSON has ``error``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from relay.errors import (
    PROVIDER_AUTH,
    PROVIDER_ERROR,
    PROVIDER_INCOMPLETE,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    ProviderError,
    provider_error_for_status,
)
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.providers import ChatRequest
from relay.providers.keys import KeySource

DONE = "[DONE]"
MAX_ERROR_DETAIL_CHARS = 200


class ChunkParser:
    """Turns the ``data`` of each SSE event into normalised events. No I/O."""

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider
        self.finished = False

    def feed(self, data: str) -> list[ProviderEvent]:
        if data == DONE:
            self.finished = True
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} sent a malformed stream chunk") from None
        if not isinstance(chunk, dict):
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} sent a malformed stream chunk")
        if chunk.get("error"):
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {_error_detail(chunk)}")
        return list(_events_of(chunk))

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


def _error_detail(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if not message:
        return None
    return str(message)[:MAX_ERROR_DETAIL_CHARS]


def request_body(request: ChatRequest) -> dict[str, Any]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role, "content": m.content} for m in request.messages]
    return {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


class OpenAIChatCompletions:
    def __init__(self, http: httpx.AsyncClient, *, name: str, base_url: str, key: KeySource) -> None:
        self.name = name
        self._http = http
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._key = key

    async def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        api_key = await self._key.get()
        if not api_key:
            raise ProviderError(PROVIDER_AUTH, f"{self.name} has no API key: {self._key.variable} must be configured")
        headers = {"Authorization": f"Bearer {api_key}"}
        parser = ChunkParser(self.name)
        streaming = False
        try:
            async with aconnect_sse(
                self._http, "POST", self._url, json=request_body(request), headers=headers
            ) as source:
                response = source.response
                if response.status_code != 200:
                    await response.aread()
                    raise provider_error_for_status(self.name, response.status_code, _json_detail(response))
                streaming = True
                async for sse in source.aiter_sse():
                    for event in parser.feed(sse.data):
                        yield event
            parser.finish()
        except httpx.TimeoutException as exc:
            raise ProviderError(PROVIDER_TIMEOUT, f"{self.name} did not answer in time") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if parser.finished:
                return
            code = PROVIDER_INCOMPLETE if streaming else PROVIDER_UNAVAILABLE
            raise ProviderError(code, f"{self.name} closed the connection mid-stream") from exc
        except httpx.TransportError as exc:
            raise ProviderError(PROVIDER_UNAVAILABLE, f"{self.name} could not be reached") from exc


def _json_detail(response: httpx.Response) -> str | None:
    try:
        return _error_detail(response.json())
    except ValueError:
        return None
