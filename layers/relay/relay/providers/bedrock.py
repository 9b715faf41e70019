"""AWS Bedrock ConverseStream through boto3 (``bedrock-runtime`` ``converse_stream``).

Events: ``messageStart``, ``contentBlockDelta`` (``delta.text``), ``contentBlockStop``, ``messageStop``
(``stopReason``: the terminal event), then ``metadata`` (``usage``). boto3's event iterator blocks, so it runs in a
worker thread that hands each event to the event loop; a failure during iteration raises ``EventStreamError``.
The endpoint follows boto3's own ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``; credentials are boto3's.

Images: an ``image`` content block each (``format`` and the raw ``bytes``, which botocore encodes), before the text.
Which models take them is known here for the families that do (Claude from Claude 3 on but 3.5 Haiku, Nova Lite and
Pro and later, Llama 3.2 11B and 90B, Llama 4, Pixtral); any other model id is taken as text-only unless
IMAGE_MODELS names it.

Reasoning arrives as ``contentBlockDelta.delta.reasoningContent``: ``text`` (shown), ``signature`` (kept, never
shown), ``redactedContent`` (noted once per block, never shown); any other member is skipped. A session's reasoning
option is passed to Anthropic's Claude models, the ones whose parameter Bedrock documents, as
``additionalModelRequestFields.thinking``; other models leave it out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

from relay import config
from relay.errors import (
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_ERROR,
    PROVIDER_INCOMPLETE,
    PROVIDER_RATE_LIMITED,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    ProviderError,
)
from relay.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    ReasoningRedacted,
    ReasoningSignature,
    TextDelta,
    Usage,
)
from relay.providers.anthropic import takes_images as claude_takes_images
from relay.providers.anthropic import takes_thinking, thinking
from relay.providers.base import ChatMessage, ChatRequest

AUTH_CODES = {"accessdeniedexception", "unrecognizedclientexception", "expiredtokenexception",
              "invalidsignatureexception"}
RATE_CODES = {"throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"}
UNAVAILABLE_CODES = {"serviceunavailableexception", "internalserverexception", "modelnotreadyexception"}
# A cross-region inference profile's id starts with its geography ("us.amazon.nova-pro-v1:0").
INFERENCE_PROFILE_GEOGRAPHIES = {"us", "eu", "apac", "us-gov", "ca", "jp", "au", "global"}
# Model ids (after any inference profile's geography) of the families that take images, besides Claude's.
IMAGE_MODELS = ("amazon.nova-lite", "amazon.nova-pro", "amazon.nova-premier", "amazon.nova-2", "meta.llama3-2-11b",
                "meta.llama3-2-90b", "meta.llama4", "mistral.pixtral")


class EventParser:
    """Turns each ConverseStream event (a one-key dict) into normalised events. No I/O."""

    def __init__(self, provider: str = "bedrock") -> None:
        self.provider = provider
        self.finished = False
        self._redacted_blocks: set[object] = set()

    def feed(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"] or {}
            delta = block.get("delta") or {}
            text = delta.get("text")
            if text:
                return [TextDelta(text)]
            reasoning = delta.get("reasoningContent")
            return self._reasoning(reasoning, block.get("contentBlockIndex")) if isinstance(reasoning, dict) else []
        if "messageStop" in event:
            self.finished = True
            return [Finish(str((event["messageStop"] or {}).get("stopReason") or "end_turn"))]
        if "metadata" in event:
            usage = (event["metadata"] or {}).get("usage") or {}
            return [Usage(int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0))]
        return []

    def _reasoning(self, reasoning: dict[str, Any], block: object) -> list[ProviderEvent]:
        if isinstance(reasoning.get("text"), str) and reasoning["text"]:
            return [ReasoningDelta(reasoning["text"])]
        if isinstance(reasoning.get("signature"), str) and reasoning["signature"]:
            return [ReasoningSignature(reasoning["signature"])]
        if reasoning.get("redactedContent") and block not in self._redacted_blocks:
            self._redacted_blocks.add(block)  # a redacted block may come in many pieces: it is one block
            return [ReasoningRedacted()]
        return []

    def finish(self) -> None:
        if not self.finished:
            raise ProviderError(PROVIDER_INCOMPLETE, f"{self.provider} ended the stream before messageStop")


def takes_images(model: str) -> bool:
    _, found, claude = model.partition("anthropic.")
    if found:
        return claude_takes_images(claude)
    geography, _, rest = model.partition(".")
    return (rest if geography in INFERENCE_PROFILE_GEOGRAPHIES else model).startswith(IMAGE_MODELS)


def _message(message: ChatMessage) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"image": {"format": image.media_type.removeprefix("image/"), "source": {"bytes": image.data}}}
        for image in message.images]
    if message.content or not blocks:
        blocks.append({"text": message.content})
    return {"role": message.role, "content": blocks}


def request_kwargs(request: ChatRequest, max_tokens: int = config.DEFAULT_ANTHROPIC_MAX_TOKENS) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "modelId": request.model,
        "messages": [_message(m) for m in request.messages],
    }
    if request.system:
        kwargs["system"] = [{"text": request.system}]
    if request.reasoning is not None and reasoning_unsupported(request.model) is None:
        parameter, total_tokens = thinking(request.reasoning, max_tokens)
        kwargs["additionalModelRequestFields"] = {"thinking": parameter}
        kwargs["inferenceConfig"] = {"maxTokens": total_tokens}
    return kwargs


def reasoning_unsupported(model: str) -> str | None:
    """Claude's thinking is the one reasoning parameter mapped here: a model id or inference profile names it as
    ``[region.]anthropic.claude-...``."""
    _, anthropic, claude = model.partition("anthropic.")
    if anthropic and takes_thinking(claude):
        return None
    return f"{model} takes no reasoning option through this relay (only Anthropic's Claude models on Bedrock do)"


def provider_error(provider: str, exc: Exception) -> ProviderError:
    """botocore's exceptions as the relay's stable codes."""
    from botocore import exceptions
    from botocore.eventstream import ParserError
    from urllib3.exceptions import ProtocolError

    if isinstance(exc, ParserError):
        # botocore's event stream decoder refuses a frame whose prelude declares over 24 MB of payload (or 128 KB
        # of headers) before buffering it, and one whose checksums fail: a frame is bounded there, as a line is in
        # relay/sse.py for the SSE providers.
        return ProviderError(PROVIDER_ERROR, f"{provider} sent an event stream frame the relay cannot read "
                                             f"({type(exc).__name__})")
    if isinstance(exc, exceptions.EventStreamError):  # after HTTP 200
        code = exc.response.get("Error", {}).get("Code", "error")
        return ProviderError(PROVIDER_ERROR, f"{provider} failed mid-stream: {code}")
    if isinstance(exc, exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")).lower()
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in AUTH_CODES or status in (401, 403):
            return ProviderError(PROVIDER_AUTH, f"{provider} rejected the AWS credentials: they must allow "
                                 "bedrock:InvokeModelWithResponseStream", status=status)
        if code in RATE_CODES or status == 429:
            return ProviderError(PROVIDER_RATE_LIMITED, f"{provider} is throttling requests", status=status)
        if code in UNAVAILABLE_CODES or (status or 0) >= 500:
            return ProviderError(PROVIDER_UNAVAILABLE, f"{provider} is unavailable ({code})", status=status)
        return ProviderError(PROVIDER_BAD_REQUEST, f"{provider} rejected the request ({code})", status=status)
    if isinstance(exc, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return ProviderError(PROVIDER_AUTH, f"{provider} has no AWS credentials: they must be configured")
    if isinstance(exc, exceptions.ReadTimeoutError | exceptions.ConnectTimeoutError):
        return ProviderError(PROVIDER_TIMEOUT, f"{provider} did not answer in time")
    if isinstance(exc, exceptions.ResponseStreamingError | exceptions.IncompleteReadError | ProtocolError):
        # botocore reads an event stream straight from urllib3, whose errors reach the iterator unwrapped
        return ProviderError(PROVIDER_INCOMPLETE, f"{provider} closed the connection mid-stream")
    if isinstance(exc, exceptions.BotoCoreError):
        return ProviderError(PROVIDER_UNAVAILABLE, f"{provider} could not be reached")
    return ProviderError(PROVIDER_ERROR, f"{provider} failed: {type(exc).__name__}")


def create_bedrock_client(read_timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    # The relay decides about retries; boto3 makes one attempt.
    one_attempt = Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=read_timeout,
                         connect_timeout=config.PROVIDER_CONNECT_TIMEOUT_SECONDS)
    return boto3.client("bedrock-runtime", config=one_attempt)


class BedrockConverseStream:
    def __init__(self, *, read_timeout: float, name: str = "bedrock",
                 max_tokens: int = config.DEFAULT_ANTHROPIC_MAX_TOKENS,
                 client_factory: Callable[[], Any] | None = None) -> None:
        self.name = name
        self._max_tokens = max_tokens  # a Claude answer's own room when it thinks (ANTHROPIC_MAX_TOKENS)
        self._client_factory = client_factory or (lambda: create_bedrock_client(read_timeout))
        self._client: Future[Any] | None = None
        self._lock = threading.Lock()

    async def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:  # created on first use: only deployments that use Bedrock pay for it
                self._client = Future()
                threading.Thread(target=self._create_client, args=(self._client,), daemon=True).start()
        return await asyncio.wrap_future(self._client)

    def _create_client(self, future: Future[Any]) -> None:
        try:
            future.set_result(self._client_factory())
        except Exception as exc:
            future.set_exception(exc)

    def reasoning_unsupported(self, model: str) -> str | None:
        return reasoning_unsupported(model)

    def takes_images(self, model: str) -> bool:
        return takes_images(model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        try:
            client = await self._get_client()
        except Exception as exc:
            raise provider_error(self.name, exc) from exc
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        opened: dict[str, Any] = {}

        def pump() -> None:
            try:
                started = time.perf_counter()
                response = client.converse_stream(**request_kwargs(request, self._max_tokens))
                # botocore does not tell apart connecting; the first byte's time includes it
                request.exchange.first_byte_seconds = time.perf_counter() - started
                opened["stream"] = response["stream"]
                for event in response["stream"]:
                    loop.call_soon_threadsafe(queue.put_nowait, ("event", event))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            finally:
                if "stream" in opened:
                    opened["stream"].close()  # a cut stream leaves its connection open otherwise

        worker = threading.Thread(target=pump, daemon=True)
        worker.start()
        parser = EventParser(self.name)
        try:
            ended = False
            while not ended:
                received = [await queue.get()]
                while not queue.empty():  # whatever else has arrived goes out in the same batch
                    received.append(queue.get_nowait())
                batch: list[ProviderEvent] = []
                for kind, item in received:
                    if kind == "end":
                        ended = True
                        break
                    if kind == "error":
                        error = provider_error(self.name, item)
                        if error.code == PROVIDER_INCOMPLETE and parser.finished:
                            ended = True
                            break
                        if batch:
                            yield batch
                        raise error from item
                    batch += parser.feed(item)
                if batch:
                    yield batch
        finally:
            if "stream" in opened and worker.is_alive():
                opened["stream"].close()  # unblocks the worker's read when the relay stops early
        parser.finish()
