"""OpenAI Responses streaming (``POST {base_url}/responses`` with ``stream: true``).

Each event is ``event: <type>`` + ``data: {json}``; there is no ``[DONE]``. Text comes in
``response.output_text.delta``; the stream ends with ``response.completed``, ``response.incomplete`` (both carry
the usage) or ``response.failed``; ``error`` can arrive after HTTP 200.

Images: a user message's content becomes a list of ``input_image`` parts (data URLs), then its ``input_text``; the
same models take them as on Chat Completions.

Reasoning: a session's reasoning option becomes ``reasoning: {effort, summary: "auto"}``, and the reasoning summary
then streams as ``response.reasoning_summary_text.delta`` (one summary part after another, set apart here by a blank
line); open-weight models stream their raw reasoning as ``response.reasoning_text.delta``. The count is in
``usage.output_tokens_details.reasoning_tokens``. Other reasoning events (parts added and done) carry nothing new.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from relay.errors import PROVIDER_ERROR, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, ReasoningDelta, TextDelta, Usage
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.keys import KeySource
from relay.providers.openai import reasoning_unsupported, takes_images
from relay.providers.streaming import parse_json, sse_stream

REASONING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")


class EventParser:
    def __init__(self, provider: str = "openai-responses") -> None:
        self.provider = provider
        self.finished = False
        self._reasoning_part: tuple[object, object, object] | None = None  # the part the last reasoning delta was in

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]:
        payload = parse_json(self.provider, data)
        kind = payload.get("type") or event
        if kind == "response.output_text.delta":
            return [TextDelta(payload["delta"])] if payload.get("delta") else []
        if kind in REASONING_DELTAS:
            return self._reasoning(payload)
        if kind in ("response.completed", "response.incomplete"):
            self.finished = True
            response = payload.get("response") or {}
            reason = "stop" if kind == "response.completed" else (
                (response.get("incomplete_details") or {}).get("reason") or "incomplete")
            usage = response.get("usage") or {}
            events: list[ProviderEvent] = [Finish(reason)]
            if usage:
                details = usage.get("output_tokens_details") or {}
                reasoning_tokens = details.get("reasoning_tokens") if isinstance(details, dict) else None
                events.append(Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0),
                                    int(reasoning_tokens) if isinstance(reasoning_tokens, int) else None))
            return events
        if kind == "response.failed":
            error = (payload.get("response") or {}).get("error") or {}
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed: {str(error.get('message'))[:200]}")
        if kind == "error":
            message = str(payload.get("message"))[:200]
            raise ProviderError(PROVIDER_ERROR, f"{self.provider} failed mid-stream: {message}")
        return []

    def _reasoning(self, payload: dict[str, Any]) -> list[ProviderEvent]:
        delta = payload.get("delta")
        if not delta or not isinstance(delta, str):
            return []
        part = (payload.get("item_id"), payload.get("summary_index"), payload.get("content_index"))
        previous, self._reasoning_part = self._reasoning_part, part
        # Summary parts are paragraphs of their own, each opening with its heading: run together, they would read
        # "...the end.**Next step**".
        return [ReasoningDelta(delta if previous in (None, part) else "\n\n" + delta)]

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream before response.completed")


def _message(message: ChatMessage) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "input_image", "image_url": image.data_url} for image in message.images]
    if message.content:
        parts.append({"type": "input_text", "text": message.content})
    return {"role": message.role, "content": parts}


def request_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "input": [_message(m) for m in request.messages],
        "stream": True,
        "store": False,
    }
    if request.system:
        body["instructions"] = request.system
    if request.reasoning is not None and reasoning_unsupported(request.model) is None:
        body["reasoning"] = {"effort": request.reasoning.level, "summary": "auto"}
    return body


class OpenAIResponses:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, key: KeySource, name: str = "openai-responses"):
        self.name = name
        self._http = http
        self._url = base_url.rstrip("/") + "/responses"
        self._key = key

    def reasoning_unsupported(self, model: str) -> str | None:
        return reasoning_unsupported(model)

    def takes_images(self, model: str) -> bool:
        return takes_images(model)

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        return sse_stream(self._http, self.name, self._url, EventParser(self.name), key=self._key,
                          headers=lambda key: {"Authorization": f"Bearer {key}"}, body=request_body(request),
                          exchange=request.exchange)
