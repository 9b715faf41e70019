"""A simulated LLM provider on loopback that speaks OpenAI's Chat Completions streaming format exactly.

The relay reaches it through its real OpenAI code path; only the base URL differs. How it answers comes from the
server's defaults, overridden per request by parameters in the model name::

    sim                                               the defaults
    sim:first_token_ms=300,tokens_per_second=40,tokens=60
    sim:fault=http_401 | http_429 | http_500          an HTTP error before streaming, in OpenAI's error shape
    sim:fault=error_after,fault_at=5                  an error chunk after 5 tokens (after HTTP 200), no [DONE]
    sim:fault=drop_after,fault_at=5                   the connection dropped after 5 tokens

Every stream is recorded with ``time.perf_counter()`` timestamps, so a test in the same process can prove what the
client saw and when.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from ulid import ULID

WORDS = ["Streaming", " tokens", " from", " the", " simulated", " provider", ",", " café", " naïve", " 🙂", ".",
         "\n\n", "Each", " one", " arrives", " on", " its", " own", ":", " data:", " event:", " done", "."]
FAULTS = {"http_401", "http_429", "http_500", "error_after", "drop_after"}


@dataclass(frozen=True, slots=True)
class Scenario:
    first_token_ms: float = 200.0
    tokens_per_second: float = 40.0  # 0 means as fast as possible
    tokens: int = 40
    fault: str | None = None
    fault_at: int = 5

    def with_model_parameters(self, model: str) -> Scenario:
        """This scenario overridden by ``name:key=value,...`` in the model name; unknown keys are an error."""
        _, _, parameters = model.partition(":")
        overrides: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(self)}
        for pair in filter(None, parameters.split(",")):
            key, _, value = pair.partition("=")
            if key not in types:
                raise ValueError(f"unknown simulated parameter {key!r}")
            overrides[key] = value if key == "fault" else (int(value) if types[key] == "int" else float(value))
        scenario = replace(self, **overrides)
        if scenario.fault is not None and scenario.fault not in FAULTS:
            raise ValueError(f"unknown fault {scenario.fault!r}")
        return scenario


def answer_tokens(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(count)]


@dataclass
class StreamRecord:
    model: str
    messages: list[dict[str, Any]]
    started_at: float
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens_sent: list[str] = field(default_factory=list)
    finished: bool = False


class SimulatedProvider:
    def __init__(self, defaults: Scenario | None = None) -> None:
        self.defaults = defaults or Scenario()
        self.records: list[StreamRecord] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat_completions, methods=["POST"])])

    async def chat_completions(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.", "invalid_request_error", "invalid_api_key")
        try:
            body = await request.json()
            model, messages = body["model"], body["messages"]
            if not isinstance(model, str) or not isinstance(messages, list) or not messages:
                raise ValueError("model and messages are required")
            scenario = self.defaults.with_model_parameters(model)
        except (ValueError, KeyError, TypeError) as exc:
            return _openai_error(400, f"Invalid request: {exc}", "invalid_request_error", None)
        if body.get("stream") is not True:
            return _openai_error(400, "The simulated provider only streams.", "invalid_request_error", None)
        if scenario.fault == "http_401":
            return _openai_error(401, "Incorrect API key provided: sk-simu****************key.",
                                 "invalid_request_error", "invalid_api_key")
        if scenario.fault == "http_429":
            return _openai_error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded",
                                 headers={"retry-after": "1", "retry-after-ms": "1000"})
        if scenario.fault == "http_500":
            return _openai_error(500, "The server had an error while processing your request.", "server_error", None)

        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        record = StreamRecord(model=model, messages=messages, started_at=time.perf_counter())
        self.records.append(record)
        stream = self._stream(scenario, model, prompt_tokens, include_usage, record)
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def _stream(
        self, scenario: Scenario, model: str, prompt_tokens: int, include_usage: bool, record: StreamRecord
    ) -> AsyncIterator[bytes]:
        chunk_id, created = f"chatcmpl-{ULID()}", int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _data({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                          "system_fingerprint": "fp_simulated", "choices": [choice],
                          **({"usage": None} if include_usage else {})})

        await asyncio.sleep(scenario.first_token_ms / 1000)
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        interval = 1 / scenario.tokens_per_second if scenario.tokens_per_second > 0 else 0.0
        for index, token in enumerate(answer_tokens(scenario.tokens)):
            if index == scenario.fault_at and scenario.fault == "error_after":
                yield _data({"error": {"message": "The server had an error processing your request.",
                                       "type": "server_error", "param": None, "code": None}})
                return
            if index == scenario.fault_at and scenario.fault == "drop_after":
                raise ConnectionAbortedError("simulated connection drop")
            if index and interval:
                await asyncio.sleep(interval)
            yield chunk({"content": token})
            record.last_token_at = time.perf_counter()
            record.first_token_at = record.first_token_at or record.last_token_at
            record.tokens_sent.append(token)
        yield chunk({}, "stop")
        if include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": scenario.tokens,
                     "total_tokens": prompt_tokens + scenario.tokens}
            yield _data({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                         "system_fingerprint": "fp_simulated", "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        record.finished = True


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _openai_error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    error = {"message": message, "type": type_, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
