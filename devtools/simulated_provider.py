"""A simulated LLM provider on loopback that speaks each real provider's streaming wire format exactly.

The relay reaches it through its real provider code; only the base URL (or boto3's endpoint) differs. Routes:

    POST /v1/chat/completions                                 OpenAI Chat Completions (and OpenAI-compatible)
    POST /v1/responses                                        OpenAI Responses
    POST /openai/v1/chat/completions                          Azure OpenAI, v1 base URL
    POST /openai/deployments/{deployment}/chat/completions    Azure OpenAI, classic (?api-version=)
    POST /v1/messages                                         Anthropic Messages
    POST /v1beta/models/{model}:streamGenerateContent         Google Gemini (?alt=sse)
    POST /model/{modelId}/converse-stream                     AWS Bedrock ConverseStream (binary event stream)

How it answers comes from the server's defaults, overridden per request by parameters in the model name::

    sim                                               the defaults
    sim:first_token_ms=300,tokens_per_second=40,tokens=60
    sim:fault=http_401 | http_429 | http_500          an HTTP error before streaming, in the provider's error shape
    sim:fault=error_after,fault_at=5                  the provider's in-stream error after 5 tokens (after HTTP 200)
    sim:fault=drop_after,fault_at=5                   the connection dropped after 5 tokens
    sim:fault=flaky,fault_at=2                        the first 2 requests for this exact model get 429, then it works
    sim:fault=garbage                                 keep-alive comments and lines that are no SSE field between events
    sim:fault=endless_line,fault_at=5                 after 5 tokens, a data: line that never ends (Bedrock: a frame
                                                      whose prelude declares 4 GB), until the client goes away
    sim:fault=endless_event,fault_at=5                after 5 tokens, data: lines that never end their event
    sim:echo=1                                        the answer is the user's message, word by word
    sim:words=tricky                                  an answer of SSE-like text ("data:", "event:") and non-ASCII
                                                      (café, 🙂), for tests of framing and offsets; "prose" (the
                                                      default) reads as a finished text in its 40 tokens
    sim:reasoning=20                                  20 reasoning deltas before the answer, in each format's own
                                                      shape (with its signature, redacted block and a shape no
                                                      client knows yet, where the format has them)

Every stream is recorded with ``time.perf_counter()`` timestamps, so a test in the same process can prove what the
client saw and when, and with the images its request carried, each read from the format's own image part as its
API reads it (OpenAI's ``image_url`` data URLs, the Responses API's ``input_image``, Anthropic's base64 ``image``
blocks, Gemini's ``inline_data``, Bedrock's ``image`` bytes); a part of another shape, an image type the APIs do not
take or base64 that does not decode is refused with the format's 400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from ulid import ULID

# The words an answer is made of (``sim:words=...``). The default reads as a finished text in the default 40
# tokens; "tricky" is for the tests that prove framing and offsets: text that looks like SSE ("data:", "event:")
# and characters outside ASCII, one of them outside the BMP (a code point that is two UTF-16 units).
PROSE_WORDS = ["This", " answer", " comes", " from", " the", " simulated", " provider", ",", " streamed", " one",
               " token", " at", " a", " time", ".", "\n\n", "It", " needs", " no", " key", ":", " the", " model",
               " name", " sets", " its", " pace", ",", " its", " length", " and", " any", " fault", ".", "\n\n",
               "Every", " answer", " is", " stored", "."]
TRICKY_WORDS = ["Streaming", " tokens", " from", " the", " simulated", " provider", ",", " café", " naïve", " 🙂", ".",
                "\n\n", "Each", " one", " arrives", " on", " its", " own", ":", " data:", " event:", " done", "."]
ANSWER_WORDS = {"prose": PROSE_WORDS, "tricky": TRICKY_WORDS}
PARAGRAPH = "\n\n"  # between one round of the words and the next, in an answer longer than they are
REASONING_WORDS = ["Let", " me", " think", ":", " a", " naïve", " café", " 🤔", " data:", " event:", "\n", "First",
                   ",", " then", " done", "."]
FAULTS = {"http_401", "http_429", "http_500", "error_after", "drop_after", "flaky", "garbage", "endless_line",
          "endless_event"}
ENDLESS_FAULTS = {"endless_line", "endless_event"}
ENDLESS_WRITE_BYTES = 65_536  # what each write of an endless stream carries
REASONING, TEXT = "reasoning", "text"  # the two kinds of delta a simulated answer is made of
SIGNATURE = "c2ltdWxhdGVkIHNpZ25hdHVyZQ=="  # what the formats that sign their reasoning send after it
REDACTED = "ZW5jcnlwdGVkIHJlYXNvbmluZw=="  # the encrypted payload of a redacted reasoning block
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")  # what every provider's API takes
DATA_URL = re.compile(r"data:(image/[a-z]+);base64,(.*)", flags=re.DOTALL)


@dataclass(frozen=True, slots=True)
class Scenario:
    first_token_ms: float = 200.0
    tokens_per_second: float = 40.0  # 0 means as fast as possible
    tokens: int = 40
    fault: str | None = None
    fault_at: int = 5
    echo: int = 0  # 1: the answer is the last message, word by word (to see markdown and odd text on the page)
    reasoning: int = 0  # reasoning deltas before the answer
    words: str = "prose"  # which of ANSWER_WORDS the answer is made of

    def with_model_parameters(self, model: str) -> Scenario:
        """This scenario overridden by ``name:key=value,...`` in the model name; unknown keys are an error."""
        _, _, parameters = model.partition(":")
        overrides: dict[str, Any] = {}
        # {name: "int", "float", "str | None", ...}: the annotations are text (from __future__ import annotations)
        types = {f.name: str(f.type) for f in fields(self)}
        if "=" not in parameters:
            parameters = ""  # a real model id with a colon (Bedrock's "...-v1:0"): the defaults
        for pair in filter(None, parameters.split(",")):
            key, _, value = pair.partition("=")
            if key not in types:
                raise ValueError(f"unknown simulated parameter {key!r}")
            overrides[key] = (value if types[key].startswith("str") else int(value) if types[key] == "int"
                              else float(value))
        scenario = replace(self, **overrides)
        if scenario.fault is not None and scenario.fault not in FAULTS:
            raise ValueError(f"unknown fault {scenario.fault!r}")
        if scenario.words not in ANSWER_WORDS:
            raise ValueError(f"unknown words {scenario.words!r}")
        return scenario


def answer_tokens(count: int, words: str = "prose") -> list[str]:
    """The first ``count`` tokens of an answer made of ``ANSWER_WORDS[words]``: the words over and over, each round
    after the first a paragraph of its own."""
    vocabulary = ANSWER_WORDS[words]
    return [(PARAGRAPH if i and not i % len(vocabulary) else "") + vocabulary[i % len(vocabulary)]
            for i in range(count)]


def reasoning_tokens(count: int) -> list[str]:
    return [REASONING_WORDS[i % len(REASONING_WORDS)] for i in range(count)]


@dataclass
class StreamRecord:
    format: str
    model: str
    messages: list[dict[str, Any]]
    started_at: float
    body: dict[str, Any] = field(default_factory=dict)  # the request as the relay sent it
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens_sent: list[str] = field(default_factory=list)
    reasoning_sent: list[str] = field(default_factory=list)
    finished: bool = False
    endless_bytes_sent: int = 0  # of an endless line or event, before the client went away
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (media type, bytes) of each image sent, in order


class InStreamError(Exception):
    """Raised into a format's writer when the scenario asks for an error after HTTP 200."""


class EndlessStream(Exception):
    """Raised through a format's writer when the scenario asks for a line or event that never ends."""


@dataclass
class Turn:
    """One simulated answer: the scenario, the request as the relay sent it, and the pacing."""

    scenario: Scenario
    record: StreamRecord
    prompt_tokens: int

    async def deltas(self) -> AsyncIterator[tuple[str, str]]:
        """``(REASONING or TEXT, token)``: the reasoning, then the answer, at the scenario's pace; an error after
        ``fault_at`` answer tokens raises InStreamError."""
        await asyncio.sleep(self.scenario.first_token_ms / 1000)
        interval = 1 / self.scenario.tokens_per_second if self.scenario.tokens_per_second > 0 else 0.0
        for index, token in enumerate(reasoning_tokens(self.scenario.reasoning)):
            if index and interval:
                await asyncio.sleep(interval)
            yield REASONING, token
            self.record.reasoning_sent.append(token)
        for index, token in enumerate(self.answer):
            if index == self.scenario.fault_at and self.scenario.fault == "error_after":
                raise InStreamError
            if index == self.scenario.fault_at and self.scenario.fault == "drop_after":
                raise ConnectionAbortedError("simulated connection drop")
            if index == self.scenario.fault_at and self.scenario.fault in ENDLESS_FAULTS:
                raise EndlessStream
            if (index or self.scenario.reasoning) and interval:
                await asyncio.sleep(interval)
            yield TEXT, token
            self.record.last_token_at = time.perf_counter()
            self.record.first_token_at = self.record.first_token_at or self.record.last_token_at
            self.record.tokens_sent.append(token)

    @property
    def answer(self) -> list[str]:
        if not self.scenario.echo:
            return answer_tokens(self.scenario.tokens, self.scenario.words)
        last = self.record.messages[-1]
        return re.findall(r"\s*\S+\s*$|\s*\S+", str(last.get("content", "")) if isinstance(last, dict) else "")

    @property
    def answer_tokens(self) -> int:
        return len(self.answer)

    @property
    def output_tokens(self) -> int:
        """What the providers bill as output: the answer and the reasoning."""
        return len(self.answer) + self.scenario.reasoning


Writer = Callable[[Turn], AsyncIterator[bytes]]


class SimulatedProvider:
    def __init__(self, defaults: Scenario | None = None) -> None:
        self.defaults = defaults or Scenario()
        self.records: list[StreamRecord] = []
        self._flaky: dict[str, int] = {}  # model -> requests refused so far
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/v1/responses", self.openai_responses, methods=["POST"]),
            Route("/openai/v1/chat/completions", self.azure_v1, methods=["POST"]),
            Route("/openai/deployments/{deployment}/chat/completions", self.azure_classic, methods=["POST"]),
            Route("/v1/messages", self.anthropic, methods=["POST"]),
            Route("/v1beta/models/{model}:streamGenerateContent", self.gemini, methods=["POST"]),
            Route("/model/{model_id}/converse-stream", self.bedrock, methods=["POST"]),
        ])

    # OpenAI Chat Completions and Azure OpenAI

    async def openai_chat(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        return self._start("openai", body.get("model"), body.get("messages"), body, _openai_errors,
                           lambda turn: _chat_chunks(turn, body, azure=False), _chat_parts)

    async def azure_v1(self, request: Request) -> Response:
        if not request.headers.get("api-key"):
            return _openai_error(401, "Access denied due to invalid subscription key.", None, "401")
        body = await request.json()
        return self._start("azure", body.get("model"), body.get("messages"), body, _openai_errors,
                           lambda turn: _chat_chunks(turn, body, azure=True), _chat_parts)

    async def azure_classic(self, request: Request) -> Response:
        if not request.headers.get("api-key"):
            return _openai_error(401, "Access denied due to invalid subscription key.", None, "401")
        if not request.query_params.get("api-version"):
            return _openai_error(404, "Resource not found", None, "404")
        body = await request.json()
        model = request.path_params["deployment"]
        return self._start("azure", model, body.get("messages"), body, _openai_errors,
                           lambda turn: _chat_chunks(turn, {**body, "model": model}, azure=True), _chat_parts)

    # OpenAI Responses

    async def openai_responses(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        messages = list(body.get("input") or [])
        if body.get("instructions"):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        return self._start("openai-responses", body.get("model"), messages, body, _openai_errors,
                           lambda turn: _responses_events(turn, body), _responses_parts)

    # Anthropic Messages

    async def anthropic(self, request: Request) -> Response:
        if not request.headers.get("x-api-key"):
            return _anthropic_error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return _anthropic_error(400, "invalid_request_error", "anthropic-version header is required")
        body = await request.json()
        if not isinstance(body.get("max_tokens"), int):
            return _anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
        messages = list(body.get("messages") or [])
        if body.get("system"):
            messages.insert(0, {"role": "system", "content": body["system"]})
        return self._start("anthropic", body.get("model"), messages, body, _anthropic_errors,
                           lambda turn: _anthropic_events(turn, body), _anthropic_parts)

    # Google Gemini

    async def gemini(self, request: Request) -> Response:
        if not request.headers.get("x-goog-api-key"):
            return _gemini_error(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED")
        if request.query_params.get("alt") != "sse":
            return _gemini_error(400, "The simulated Gemini streams only with alt=sse.", "INVALID_ARGUMENT")
        body = await request.json()
        messages = [{"role": c.get("role"), "content": c.get("parts")} for c in body.get("contents") or []]
        if body.get("systemInstruction"):
            text = "".join(p.get("text", "") for p in body["systemInstruction"].get("parts", []))
            messages.insert(0, {"role": "system", "content": text})
        return self._start("gemini", request.path_params["model"], messages, body, _gemini_errors,
                           _gemini_chunks, _gemini_parts)

    # AWS Bedrock ConverseStream

    async def bedrock(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return _bedrock_error(403, "UnrecognizedClientException", "The security token included is invalid.")
        body = await request.json()
        messages = list(body.get("messages") or [])
        if body.get("system"):
            messages.insert(0, {"role": "system", "content": "".join(s.get("text", "") for s in body["system"])})
        model = request.path_params["model_id"]
        return self._start("bedrock", model, messages, body, _bedrock_errors, _bedrock_frames, _bedrock_parts,
                           media_type="application/vnd.amazon.eventstream")

    # Shared

    def _start(
        self,
        wire_format: str,
        model: Any,
        messages: Any,
        body: dict[str, Any],
        errors: Callable[[int], Response],
        writer: Writer,
        parts: PartReader,
        media_type: str = "text/event-stream",
    ) -> Response:
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            return errors(400)
        try:
            messages, images = _read_messages(messages, parts, refuse_empty=wire_format in REFUSE_EMPTY_TEXT)
        except (BadImage, ValueError, TypeError, AttributeError, KeyError, binascii.Error):
            return errors(400)
        try:
            scenario = self.defaults.with_model_parameters(model)
        except ValueError:
            return errors(400)
        if scenario.fault in ("http_401", "http_429", "http_500"):
            return errors(int(scenario.fault.removeprefix("http_")))
        if scenario.fault == "flaky" and self._flaky.get(model, 0) < scenario.fault_at:
            self._flaky[model] = self._flaky.get(model, 0) + 1
            refused = errors(429)
            refused.headers["retry-after-ms"] = "50"  # the client is told to come back soon
            return refused
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        record = StreamRecord(wire_format, model, messages, time.perf_counter(), body, images=images)
        self.records.append(record)
        turn = Turn(scenario, record, prompt_tokens)

        async def frames() -> AsyncIterator[bytes]:
            try:
                async for frame in paced(writer(turn)):
                    yield frame
            except EndlessStream:
                async for chunk in _endless(wire_format, scenario.fault or ""):
                    yield chunk
                    record.endless_bytes_sent += len(chunk)
            record.finished = True

        async def paced(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            if scenario.fault == "garbage":  # what proxies and odd servers put between events: to be ignored
                async for frame in frames:
                    yield b": keep-alive\r\n\r\nnot a field at all\nretry: 1000\n\n" + frame + b":\n\n"
            elif scenario.tokens_per_second > 0:
                async for frame in frames:
                    yield frame
            else:  # as fast as possible: many frames per write, as a fast real server's TCP stream carries them
                batch = bytearray()
                try:
                    async for frame in frames:
                        batch += frame
                        if len(batch) >= 16_384:
                            yield bytes(batch)
                            batch.clear()
                except Exception:
                    if batch:
                        yield bytes(batch)  # what was sent before a dropped connection still arrives
                    raise
                if batch:
                    yield bytes(batch)

        return StreamingResponse(frames(), media_type=media_type, headers={"Cache-Control": "no-cache"})


# Images: each format's message content, as text and the images its parts carry

# Wire formats whose real API answers a user message with no text (and no image) with a 400: Anthropic ("all
# messages must have non-empty content"), Gemini ("empty text parameter"), Bedrock Converse ("The text field in the
# ContentBlock object ... is blank"). OpenAI's take it.
REFUSE_EMPTY_TEXT = frozenset({"anthropic", "gemini", "bedrock"})


class BadImage(ValueError):
    """An image part the format's API would refuse with a 400."""


Image = tuple[str, bytes]  # media type, bytes
PartReader = Callable[[Any], tuple[str, list[Image]]]  # a message's content -> its text and its images


def _read_messages(messages: list[Any], parts: PartReader, *, refuse_empty: bool = False,
                   ) -> tuple[list[dict[str, Any]], list[Image]]:
    """The messages with their content as text (what the scenarios read: echo, the prompt's tokens), and every image
    they carry, in order. With ``refuse_empty``, a user message of no text and no image is a ValueError (a 400)."""
    read, images = [], []
    for message in messages:
        text, carried = parts(message["content"]) if message.get("role") != "system" else (message["content"], [])
        if refuse_empty and message.get("role") == "user" and not text and not carried:
            raise ValueError("a user message with no content")
        read.append({"role": message["role"], "content": text})
        images += carried
    return read, images


def _decoded(media_type: Any, data: Any) -> Image:
    if media_type not in IMAGE_TYPES or not isinstance(data, str) or not data:
        raise BadImage(f"not an image part the API takes: {media_type!r}")
    return media_type, base64.b64decode(data, validate=True)


def _from_data_url(url: Any) -> Image:
    match = DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise BadImage("an image_url must be a data URL here")
    return _decoded(match[1], match[2])


def _typed_parts(content: Any, text_type: str, image: Callable[[dict[str, Any]], Image]) -> tuple[str, list[Image]]:
    """Content that is a string, or a list of ``{"type": ...}`` parts: text parts of ``text_type``, image parts."""
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        if part["type"] == text_type:
            texts.append(str(part["text"]))
        else:
            images.append(image(part))
    return "".join(texts), images


def _chat_parts(content: Any) -> tuple[str, list[Image]]:
    def image(part: dict[str, Any]) -> Image:
        if part["type"] != "image_url":
            raise BadImage(part["type"])
        return _from_data_url(part["image_url"]["url"])

    return _typed_parts(content, "text", image)


def _responses_parts(content: Any) -> tuple[str, list[Image]]:
    def image(part: dict[str, Any]) -> Image:
        if part["type"] != "input_image":
            raise BadImage(part["type"])
        return _from_data_url(part["image_url"])

    return _typed_parts(content, "input_text", image)


def _anthropic_parts(content: Any) -> tuple[str, list[Image]]:
    def image(part: dict[str, Any]) -> Image:
        source = part["source"]
        if part["type"] != "image" or source["type"] != "base64":
            raise BadImage(part["type"])
        return _decoded(source["media_type"], source["data"])

    if isinstance(content, list) and any(part.get("type") == "text" and not part.get("text") for part in content):
        raise BadImage("text content blocks must be non-empty")  # as Anthropic answers it
    return _typed_parts(content, "text", image)


def _gemini_parts(parts: Any) -> tuple[str, list[Image]]:
    texts, images = [], []
    for part in parts:
        inline = part.get("inline_data") or part.get("inlineData")  # the API reads either spelling
        if inline is not None:
            images.append(_decoded(inline.get("mime_type") or inline.get("mimeType"), inline["data"]))
        else:
            texts.append(str(part.get("text", "")))
    return "".join(texts), images


def _bedrock_parts(blocks: Any) -> tuple[str, list[Image]]:
    texts, images = [], []
    for block in blocks:
        if "image" in block:
            image = block["image"]
            if image["format"] not in ("png", "jpeg", "gif", "webp"):
                raise BadImage(image["format"])
            images.append(_decoded(f"image/{image['format']}", image["source"]["bytes"]))  # base64 in the JSON
        else:
            texts.append(str(block.get("text", "")))
    return "".join(texts), images


async def _endless(wire_format: str, fault: str) -> AsyncIterator[bytes]:
    """A line (or an event's data lines) that never ends, a write at a time until the client goes away. Bedrock's
    counterpart is a frame whose prelude (its CRC correct) declares the largest length its 32 bits can."""
    if wire_format == "bedrock":
        prelude = struct.pack("!II", 0xFFFF_FFFF, 0)
        yield prelude + struct.pack("!I", binascii.crc32(prelude))
        piece = b"\0" * ENDLESS_WRITE_BYTES
    elif fault == "endless_line":
        yield b"data: "
        piece = b"x" * ENDLESS_WRITE_BYTES
    else:
        line = b"data: " + b"x" * 1_017 + b"\n"  # 1 KiB
        piece = line * (ENDLESS_WRITE_BYTES // len(line))
    while True:
        yield piece
        # uvicorn's send returns at once once the client is gone: without a pause, the disconnect that ends this
        # stream would never be heard, and the server's loop would spin here for good.
        await asyncio.sleep(0)


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# OpenAI Chat Completions (and Azure's quirks: a first chunk with empty choices and prompt_filter_results,
# content_filter_results on chunks, chunks with no delta at all)

async def _chat_chunks(turn: Turn, body: dict[str, Any], *, azure: bool) -> AsyncIterator[bytes]:
    chunk_id, created, model = f"chatcmpl-{ULID()}", int(time.time()), body["model"]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": "fp_simulated", "choices": choices,
                     **({"usage": None} if include_usage else {}), **extra})

    def choice(delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        filters = {"content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}} if azure else {}
        return {"index": 0, **({"delta": delta} if delta is not None else {}), "logprobs": None,
                "finish_reason": finish_reason, **filters}

    if azure:
        yield _sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
    yield chunk([choice({"role": "assistant", "content": "", "refusal": None})])
    reasoned = False
    try:
        async for kind, token in turn.deltas():
            if kind == TEXT:
                yield chunk([choice({"content": token})])
                continue
            if not reasoned:  # OpenRouter's shape, which this relay does not read: to be skipped
                reasoned = True
                yield chunk([choice({"reasoning_details": [{"type": "reasoning.encrypted", "data": REDACTED}]})])
            yield chunk([choice({"reasoning_content": token})])  # DeepSeek's and vLLM's shape
    except InStreamError:
        yield _sse({"error": {"message": "The server had an error processing your request.", "type": "server_error",
                              "param": None, "code": None}})
        return
    if azure:  # asynchronous content filtering: a chunk with no delta and empty id/model
        yield _sse({"choices": [choice(None)], "created": 0, "id": "", "model": "", "object": ""})
    yield chunk([choice({}, "stop")])
    if include_usage:
        usage = {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.output_tokens,
                 "total_tokens": turn.prompt_tokens + turn.output_tokens,
                 "completion_tokens_details": {"reasoning_tokens": turn.scenario.reasoning}}
        yield _sse({"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "system_fingerprint": "fp_simulated", "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _openai_error(status: int, message: str, type_: str | None, code: str | None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}},
                        status_code=status, headers={"retry-after": "1", "retry-after-ms": "1000"}
                        if status == 429 else None)


def _openai_errors(status: int) -> Response:
    return {
        400: lambda: _openai_error(400, "Invalid request.", "invalid_request_error", None),
        401: lambda: _openai_error(401, "Incorrect API key provided: sk-simu****************key.",
                                   "invalid_request_error", "invalid_api_key"),
        429: lambda: _openai_error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
        500: lambda: _openai_error(500, "The server had an error while processing your request.", "server_error",
                                   None),
    }[status]()


# OpenAI Responses

async def _responses_events(turn: Turn, body: dict[str, Any]) -> AsyncIterator[bytes]:
    sequence = 0
    response = {"id": f"resp_{ULID()}", "object": "response", "created_at": int(time.time()), "status":
                "in_progress", "model": body["model"], "output": [], "usage": None}

    def event(type_: str, **data: Any) -> bytes:
        nonlocal sequence
        sequence += 1
        return _sse({"type": type_, "sequence_number": sequence, **data}, event=type_)

    reasoning = {"id": f"rs_{ULID()}", "type": "reasoning", "summary": []}
    item = {"id": f"msg_{ULID()}", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    at = 1 if turn.scenario.reasoning else 0  # the message's output_index: after the reasoning item, if any
    summary = {"item_id": reasoning["id"], "output_index": 0, "summary_index": 0}

    def open_message() -> bytes:
        return (event("response.output_item.added", output_index=at, item=item)
                + event("response.content_part.added", item_id=item["id"], output_index=at, content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []}))

    yield event("response.created", response=response)
    yield event("response.in_progress", response=response)
    if turn.scenario.reasoning:
        yield event("response.output_item.added", output_index=0, item=reasoning)
        yield event("response.reasoning_summary_part.added", **summary, part={"type": "summary_text", "text": ""})
        # An event no client reads (its delta is an object): to be skipped.
        yield event("response.reasoning_summary.delta", **summary, delta={"encrypted": REDACTED})
    else:
        yield open_message()
    text, thought = "", ""
    try:
        async for kind, token in turn.deltas():
            if kind == REASONING:
                thought += token
                yield event("response.reasoning_summary_text.delta", **summary, delta=token)
                continue
            if thought and not text:
                yield event("response.reasoning_summary_text.done", **summary, text=thought)
                yield event("response.output_item.done", output_index=0,
                            item={**reasoning, "summary": [{"type": "summary_text", "text": thought}]})
                yield open_message()
            text += token
            yield event("response.output_text.delta", item_id=item["id"], output_index=at, content_index=0,
                        delta=token, logprobs=[])
    except InStreamError:
        yield event("error", code="server_is_overloaded", message="The server is overloaded.", param=None)
        return
    yield event("response.output_text.done", item_id=item["id"], output_index=at, content_index=0, text=text)
    usage = {"input_tokens": turn.prompt_tokens, "output_tokens": turn.output_tokens,
             "total_tokens": turn.prompt_tokens + turn.output_tokens,
             "output_tokens_details": {"reasoning_tokens": turn.scenario.reasoning}}
    yield event("response.completed", response={**response, "status": "completed", "usage": usage})


# Anthropic Messages

async def _anthropic_events(turn: Turn, body: dict[str, Any]) -> AsyncIterator[bytes]:
    message = {"id": f"msg_{ULID()}", "type": "message", "role": "assistant", "model": body["model"], "content": [],
               "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": turn.prompt_tokens, "output_tokens": 1}}
    def block_start(index: int, block: dict[str, Any]) -> bytes:
        return _sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")

    def block_delta(index: int, delta: dict[str, Any]) -> bytes:
        return _sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")

    def block_stop(index: int) -> bytes:
        return _sse({"type": "content_block_stop", "index": index}, "content_block_stop")

    # With reasoning: a thinking block (0) and its signature, a redacted_thinking block (1), then the text (2).
    text_at = 2 if turn.scenario.reasoning else 0
    yield _sse({"type": "message_start", "message": message}, "message_start")
    if turn.scenario.reasoning:
        yield block_start(0, {"type": "thinking", "thinking": "", "signature": ""})
        yield block_delta(0, {"type": "thinking_summary_delta", "summary": "a delta type no client knows yet"})
    else:
        yield block_start(0, {"type": "text", "text": ""})
    yield _sse({"type": "ping"}, "ping")
    texts = 0
    try:
        async for kind, token in turn.deltas():
            if kind == REASONING:
                yield block_delta(0, {"type": "thinking_delta", "thinking": token})
                continue
            if turn.scenario.reasoning and not texts:
                yield block_delta(0, {"type": "signature_delta", "signature": SIGNATURE}) + block_stop(0)
                yield block_start(1, {"type": "redacted_thinking", "data": REDACTED}) + block_stop(1)
                yield block_start(2, {"type": "text", "text": ""})
            texts += 1
            yield block_delta(text_at, {"type": "text_delta", "text": token})
    except InStreamError:
        yield _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
        return
    yield block_stop(text_at)
    yield _sse({"type": "some_future_event", "detail": "ignored by clients"}, "some_future_event")
    yield _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": turn.output_tokens}}, "message_delta")
    yield _sse({"type": "message_stop"}, "message_stop")


def _anthropic_error(status: int, type_: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_sim"},
                        status_code=status, headers={"retry-after": "1"} if status == 429 else None)


def _anthropic_errors(status: int) -> Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error", 500: "api_error"}
    return _anthropic_error(status, kind[status], f"simulated {kind[status]}")


# Google Gemini

async def _gemini_chunks(turn: Turn) -> AsyncIterator[bytes]:
    thoughts = 0

    def usage(candidates: int) -> dict[str, int]:
        counts = {"promptTokenCount": turn.prompt_tokens, "candidatesTokenCount": candidates,
                  "totalTokenCount": turn.prompt_tokens + candidates + thoughts}
        return {**counts, "thoughtsTokenCount": thoughts} if thoughts else counts  # absent when it did not think

    def chunk(part: dict[str, Any], candidates: int) -> bytes:
        return _sse({"candidates": [{"content": {"parts": [part], "role": "model"}, "index": 0}],
                     "usageMetadata": usage(candidates), "modelVersion": "sim"})

    sent = 0
    try:
        async for kind, token in turn.deltas():
            if kind == REASONING:
                thoughts += 1
                yield chunk({"text": token, "thought": True}, 0)
                continue
            if thoughts and not sent:  # a thought part with only a signature: nothing to show
                yield chunk({"thought": True, "thoughtSignature": SIGNATURE}, 0)
            sent += 1
            yield chunk({"text": token}, sent)
    except InStreamError:
        # Gemini can report a failure mid-stream as bare JSON, without SSE framing.
        error = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                           "status": "UNAVAILABLE"}}
        yield json.dumps(error, indent=2).encode() + b"\n"
        return
    yield _sse({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP",
                                "index": 0}], "usageMetadata": usage(turn.answer_tokens), "modelVersion": "sim"})


def _gemini_error(status: int, message: str, status_name: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": status_name}}, status_code=status)


def _gemini_errors(status: int) -> Response:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
    return _gemini_error(status, f"simulated {names[status]}", names[status])


# AWS Bedrock ConverseStream: the AWS event stream encoding (application/vnd.amazon.eventstream)

def eventstream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One binary event stream message: prelude, prelude CRC, string headers, payload, message CRC."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", 7, len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def _bedrock_event(event_type: str, data: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return eventstream_message(headers, json.dumps(data).encode())


async def _bedrock_frames(turn: Turn) -> AsyncIterator[bytes]:
    def delta(index: int, delta: dict[str, Any]) -> bytes:
        return _bedrock_event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})

    # With reasoning: a reasoning block (0) and its signature, a redacted one in two pieces (1), then the text (2).
    text_at = 2 if turn.scenario.reasoning else 0
    yield _bedrock_event("messageStart", {"role": "assistant"})
    if turn.scenario.reasoning:  # a member no client knows yet (botocore hands it on as SDK_UNKNOWN_MEMBER)
        yield delta(0, {"reasoningContent": {"summaryText": "a member added later"}})
    texts = 0
    try:
        async for kind, token in turn.deltas():
            if kind == REASONING:
                yield delta(0, {"reasoningContent": {"text": token}})
                continue
            if turn.scenario.reasoning and not texts:
                yield delta(0, {"reasoningContent": {"signature": SIGNATURE}})
                yield _bedrock_event("contentBlockStop", {"contentBlockIndex": 0})
                for piece in (REDACTED[:12], REDACTED[12:]):
                    yield delta(1, {"reasoningContent": {"redactedContent": piece}})
                yield _bedrock_event("contentBlockStop", {"contentBlockIndex": 1})
            texts += 1
            yield delta(text_at, {"text": token})
    except InStreamError:
        headers = {":exception-type": "modelStreamErrorException", ":content-type": "application/json",
                   ":message-type": "exception"}
        yield eventstream_message(headers, json.dumps({"message": "The model stream failed."}).encode())
        return
    yield _bedrock_event("contentBlockStop", {"contentBlockIndex": text_at})
    yield _bedrock_event("messageStop", {"stopReason": "end_turn"})
    usage = {"inputTokens": turn.prompt_tokens, "outputTokens": turn.output_tokens,
             "totalTokens": turn.prompt_tokens + turn.output_tokens}
    yield _bedrock_event("metadata", {"usage": usage, "metrics": {"latencyMs": 100}})


def _bedrock_error(status: int, error_type: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": error_type})


def _bedrock_errors(status: int) -> Response:
    kind = {400: "ValidationException", 401: "AccessDeniedException", 429: "ThrottlingException",
            500: "InternalServerException"}
    return _bedrock_error(403 if status == 401 else status, kind[status], f"simulated {kind[status]}")
