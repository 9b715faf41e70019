"""The HTTP side every SSE provider shares: POST, check the status, decode the stream, turn failures into
``ProviderError`` with the stable codes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Protocol

import httpx

from relay.connections import OpenedAhead
from relay.errors import (
    PROVIDER_AUTH,
    PROVIDER_ERROR,
    PROVIDER_INCOMPLETE,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    ProviderError,
    provider_error_for_status,
)
from relay.events import ProviderEvent, well_formed
from relay.providers.base import Exchange
from relay.providers.keys import KeySource
from relay.sse import ServerSentEvent, SSEDecoder

__all__ = ["StreamParser", "api_key", "error_detail", "parse_json", "parsed", "post_sse", "retry_after", "sse_stream"]

MAX_ERROR_DETAIL_CHARS = 200
POOLED, OPENED_AHEAD, NEW = "pooled", "opened ahead", "new"  # which connection a request went on (Exchange)


class StreamParser(Protocol):
    """A provider's I/O-free parser: SSE events in, normalised events out."""

    provider: str  # its provider's name, for error messages
    finished: bool  # its provider's terminal event has arrived

    def feed(self, data: str, event: str = "message") -> list[ProviderEvent]: ...

    def finish(self) -> None:
        """Raise ``provider_incomplete`` unless the terminal event arrived."""


async def api_key(provider: str, key: KeySource) -> str:
    value = await key.get()
    if not value:
        raise ProviderError(PROVIDER_AUTH, f"{provider} has no API key: {key.variable} must be configured")
    return value


async def sse_stream(
    http: httpx.AsyncClient,
    provider: str,
    url: str,
    parser: StreamParser,
    *,
    key: KeySource,
    headers: Callable[[str], dict[str, str]],
    body: dict[str, Any],
    params: dict[str, str] | None = None,
    exchange: Exchange | None = None,
) -> AsyncGenerator[list[ProviderEvent], None]:
    """A provider's answer, a batch of normalised events per network read: its API key from ``key``, put into the
    request's ``headers`` (which are given the key), then the POST, decoded by ``parser``. Everything is closed
    when this ends, whichever way."""
    request_headers = headers(await api_key(provider, key))
    events = post_sse(http, provider, url, body=body, headers=request_headers, params=params, exchange=exchange)
    async with aclosing(parsed(events, parser)) as batches:
        async for batch in batches:
            yield batch


async def parsed(
    batches: AsyncGenerator[list[ServerSentEvent], None], parser: StreamParser
) -> AsyncGenerator[list[ProviderEvent], None]:
    """The normalised events of a stream, a batch per network read; a cut after the terminal event still counts
    as whole. ``batches`` is closed when this ends, whichever way, so its HTTP response is too (``async for``
    alone would leave it to the garbage collector when the parser raises). An event the parser cannot read (a
    field of another type than documented, JSON nested past the recursion limit) fails the turn with
    ``provider_error`` like an error event, never with an exception the turn does not expect."""
    try:
        async with aclosing(batches):
            async for batch in batches:
                events: list[ProviderEvent] = []
                try:
                    for sse in batch:
                        for event in parser.feed(sse.data, sse.event):
                            if not well_formed(event):  # a field of another JSON type, or a count none can be
                                raise TypeError(f"{type(event).__name__} of another type than documented")
                            events.append(event)
                except Exception as exc:
                    if events:
                        yield events  # the text before the error still reaches the client and the store
                    if isinstance(exc, ProviderError):
                        raise
                    raise ProviderError(PROVIDER_ERROR, f"{parser.provider} sent a stream event the relay cannot "
                                                        f"read ({type(exc).__name__})") from exc
                if events:
                    yield events
    except ProviderError as exc:
        if exc.code == PROVIDER_INCOMPLETE and parser.finished:
            return
        raise
    parser.finish()


async def post_sse(
    http: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    params: dict[str, str] | None = None,
    exchange: Exchange | None = None,
) -> AsyncGenerator[list[ServerSentEvent], None]:
    """The events of a streamed POST, as many as each network read completes. A cut connection raises
    ``provider_incomplete``; the caller decides whether its provider's terminal event had already arrived.
    ``exchange``, when given, gets the connect and first-byte times."""
    streaming = False
    decoder = SSEDecoder(provider)
    started = time.perf_counter()
    extensions = None
    if exchange is not None:
        exchange.connect_seconds, exchange.connection = 0.0, POOLED  # unless the trace hook sees one opened
        extensions = {"trace": _connect_timer(exchange)}
    try:
        request_headers = {**headers, "Accept": "text/event-stream"}
        async with http.stream("POST", url, json=body, headers=request_headers, params=params,
                               extensions=extensions) as response:
            if exchange is not None:
                exchange.first_byte_seconds = time.perf_counter() - started
            if response.status_code != 200:
                await response.aread()
                error = provider_error_for_status(provider, response.status_code, error_detail(response.content))
                error.retry_after = retry_after(response.headers)
                raise error
            streaming = True
            async for chunk in response.aiter_bytes():
                events = decoder.feed(chunk)
                if events:
                    yield events
            events = decoder.finish()
            if events:
                yield events
    except httpx.TimeoutException as exc:
        raise ProviderError(PROVIDER_TIMEOUT, f"{provider} did not answer in time") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        code = PROVIDER_INCOMPLETE if streaming else PROVIDER_UNAVAILABLE
        raise ProviderError(code, f"{provider} closed the connection mid-stream") from exc
    except httpx.TransportError as exc:
        raise ProviderError(PROVIDER_UNAVAILABLE, f"{provider} could not be reached") from exc
    # Some providers (Gemini) report a failure after HTTP 200 as bare JSON, without SSE framing; any other line that
    # is no SSE field is ignored, as the SSE specification says.
    detail = error_detail("".join(decoder.unframed).encode()) if decoder.unframed else None
    if detail:
        raise ProviderError(PROVIDER_ERROR, f"{provider} failed mid-stream: {detail}")


def _connect_timer(exchange: Exchange) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace hook that times opening a connection: TCP, then TLS when there is any (for a connection
    opened ahead, the wait for what was left of it). A request on a pooled connection makes no connection events,
    and its time stays 0."""
    started = 0.0

    async def trace(event: str, info: dict[str, Any]) -> None:
        nonlocal started
        if event == "connection.connect_tcp.started":
            started = time.perf_counter()
        elif event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            exchange.connect_seconds = time.perf_counter() - started
            if event == "connection.connect_tcp.complete":
                exchange.connection = OPENED_AHEAD if isinstance(info.get("return_value"), OpenedAhead) else NEW

    return trace


def retry_after(headers: httpx.Headers) -> float | None:
    """The provider's own hint: OpenAI's retry-after-ms, else the standard retry-after in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None


def error_detail(body: bytes | str | dict[str, Any]) -> str | None:
    """The provider's own error message from ``{"error": {"message"}}`` (every provider here uses that shape)."""
    if not isinstance(body, dict):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past the recursion limit: no detail to give
            return None
    if isinstance(body, list) and body:  # Gemini wraps errors in a one-element array when not streaming SSE
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    return str(message)[:MAX_ERROR_DETAIL_CHARS] if message else None


def parse_json(provider: str, data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # a provider's events nest ~6 levels: no depth pre-scan on the hot path
        raise ProviderError(PROVIDER_ERROR, f"{provider} sent a malformed stream event") from None
    if not isinstance(value, dict):
        raise ProviderError(PROVIDER_ERROR, f"{provider} sent a malformed stream event")
    return value
