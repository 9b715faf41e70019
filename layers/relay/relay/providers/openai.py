"""OpenAI Chat Completions streaming (``POST {base_url}/chat/completions`` with ``stream: true``).

Wire format: ``data: {chunk}`` lines ending with ``data: [DONE]``; with ``stream_options.include_usage`` the last
chunk has ``choices: []`` and the usage. An error after HTTP 200 is a ``data:`` line whose JSON has ``error``.
Azure OpenAI speaks the same format with a few quirks (chunks with empty ``choices`` or no ``delta``), handled here.

Images: a user message's content becomes a list of parts, each image an ``image_url`` part with a data URL, then
the text. Every model takes them but the families in TEXT_ONLY_MODELS (older GPT-4 and GPT-3.5, the mini o-series
before o4, the open-weight gpt-oss); an OpenAI-compatible server's models are assumed to as well (IMAGE_MODELS and
TEXT_ONLY_MODELS say otherwise, relay/config.py).

Reasoning: OpenAI's own models stream none here (only a count, ``usage.completion_tokens_details.reasoning_tokens``);
OpenAI-compatible servers stream it beside the answer as ``delta.reasoning_content`` (DeepSeek, vLLM) or
``delta.reasoning`` (vLLM's newer name, Ollama, OpenRouter). Any other shape is skipped. A session's reasoning
option becomes ``reasoning_effort``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay.errors import PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, ReasoningDelta, TextDelta, Usage
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.keys import KeySource
from relay.providers.streaming import error_detail, parse_json, sse_stream

DONE = "[DONE]"
# OpenAI model families that take no reasoning_effort (the API refuses it with a 400). Any other model is sent it:
# OpenAI's reasoning models (o1, o3, o4-mini, gpt-5, ...) take it, and so do the OpenAI-compatible servers that
# reason (vLLM, Ollama); a server that has no use for it ignores it.
NON_REASONING_MODELS = ("gpt-3.5", "gpt-4", "chatgpt-", "gpt-5-chat")
# OpenAI model families that take no images (the API refuses image parts with a 400): GPT-3.5, the first GPT-4 and
# its text-only previews, o1-mini and o3-mini, gpt-oss. "gpt-4" itself is matched whole (gpt-4o, gpt-4.1 and
# gpt-4-turbo do take them).
TEXT_ONLY_MODELS = ("gpt-3.5", "gpt-4-0", "gpt-4-32k", "gpt-4-1106-preview", "o1-mini", "o3-mini", "gpt-oss",
                    "davinci", "babbage")


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
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if content:
            events.append(TextDelta(content))
        if choice.get("finish_reason"):
            events.append(Finish(choice["finish_reason"]))
    usage = chunk.get("usage")
    if usage:
        details = usage.get("completion_tokens_details") or {}
        reasoning_tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
        events.append(Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                            int(reasoning_tokens) if isinstance(reasoning_tokens, int) else None))
    return events


def reasoning_unsupported(model: str) -> str | None:
    """Why ``model`` is not sent a reasoning option (None when it is)."""
    if model.startswith(NON_REASONING_MODELS):
        return f"{model} takes no reasoning_effort (it is no reasoning model): the reasoning option was left out"
    return None


def takes_images(model: str) -> bool:
    return model != "gpt-4" and not model.startswith(TEXT_ONLY_MODELS)


def _message(message: ChatMessage) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image.data_url}}
                                   for image in message.images]
    if message.content:
        parts.append({"type": "text", "text": message.content})
    return {"role": message.role, "content": parts}


def request_body(request: ChatRequest, *, model: bool = True) -> dict[str, Any]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [_message(m) for m in request.messages]
    body: dict[str, Any] = {"model": request.model} if model else {}
    body.update(messages=messages, stream=True, stream_options={"include_usage": True})
    if request.reasoning is not None and reasoning_unsupported(request.model) is None:
        body["reasoning_effort"] = request.reasoning.level
    return body


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

    def reasoning_unsupported(self, model: str) -> str | None:
        return reasoning_unsupported(model)

    def takes_images(self, model: str) -> bool:
        return takes_images(model)

    def _headers(self, key: str) -> dict[str, str]:
        return {"api-key": key} if self._azure else {"Authorization": f"Bearer {key}"}
