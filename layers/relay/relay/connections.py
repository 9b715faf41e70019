"""The relay's one HTTP client, and the provider connections it keeps ready.

A request on a new connection to a provider first pays DNS, TCP and TLS: two or three round trips, ~120-180 ms to a
provider 60 ms away, and on a cold start that came after the store read. Three things take it off the user's time:

1. Connections opened ahead (``Connections.warm``): at readiness, to the origin of every provider that may serve,
   and on each chat request, to the origins this process uses whose pooled connection is gone (expired, or closed
   by the provider while the process was frozen). The connect then runs while the store read is in flight, and
   the provider request takes the connection when it leaves (waiting for the rest of the handshake if need be).
2. Idle connections are dropped after ``config.PROVIDER_KEEPALIVE_SECONDS``, before a provider or a middlebox drops
   them without a word (the monotonic clock httpcore uses keeps running while Lambda freezes a process).
3. A request that meets a dead pooled connection, or one opened ahead (the provider's close still on its way, as
   after a thaw), is sent again at once on a new connection, when not a byte of the response had come: the provider
   never saw it.

Hand-written because httpx cannot open a connection without a request: its pool gets a network backend of our own
(httpcore's public ``AsyncNetworkBackend`` interface) that hands over a connection opened ahead when one to that
host and port is waiting. Setting the pool's backend is the one private attribute used (httpcore is pinned in
layers/relay/requirements.txt, and tests/test_connections.py fails if it moves). An unasked HTTP request to each
provider would have warmed the pool too, but costs a round trip, a request in the provider's logs and limits, and
may be answered with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from relay import config, telemetry

__all__ = ["Connections", "OpenedAhead", "origin_of"]

Origin = tuple[str, str, int]  # scheme, host, port
# What a request that met a dead pooled connection raises before any response byte: the provider had closed it
# ("Server disconnected without sending a response"), reset it, or it would not take the request.
STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
MAX_STALE_ATTEMPTS = 3  # a Lambda process holds one or two idle connections per provider, rarely more


def origin_of(url: str | httpx.URL) -> Origin:
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port


class OpenedAhead(httpcore.AsyncNetworkStream):
    """A connection opened before its request, TLS included: the pool's ``start_tls`` finds it done."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, tls: bool) -> None:
        self._stream = stream
        self._tls = tls

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        if self._tls:
            return self  # done ahead, with the same context and host name the pool would use
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def looks_closed(self) -> bool:
        """Whether the other side has closed it, as far as can be told without reading: not at all over TLS 1.3,
        whose session tickets arrive after the handshake and leave a fresh connection readable."""
        return not self._tls and bool(self._stream.get_extra_info("is_readable"))


@dataclass
class _Opening:
    task: asyncio.Task[httpcore.AsyncNetworkStream]
    started_at: float


class OpeningBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with connections opened ahead: at most one per host and port, taken by the
    next connection the pool makes there, which waits for it if it is still being opened."""

    def __init__(self, ssl_context: ssl.SSLContext, keepalive_seconds: float) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._ssl_context = ssl_context
        self._keepalive_seconds = keepalive_seconds
        self._openings: dict[tuple[str, int], _Opening] = {}

    def open_ahead(self, origin: Origin, timeout: float) -> None:
        scheme, host, port = origin
        if (host, port) in self._openings:
            return
        task = asyncio.ensure_future(self._open(host, port, scheme == "https", timeout))
        task.add_done_callback(_retrieve)
        self._openings[host, port] = _Opening(task, time.monotonic())

    def has_opening(self, origin: Origin) -> bool:
        """Whether a connection is being opened, or waits, for this origin (one that failed is forgotten)."""
        opening = self._openings.get(origin[1:])
        if opening is not None and opening.task.done() and (opening.task.cancelled() or opening.task.exception()):
            del self._openings[origin[1:]]
            return False
        return opening is not None

    def drop_unused(self, origin: Origin) -> bool:
        """Closes a connection opened ahead that nobody took within the keep-alive; True when there was one."""
        opening = self._openings.get(origin[1:])
        if opening is None or time.monotonic() - opening.started_at < self._keepalive_seconds:
            return False
        del self._openings[origin[1:]]
        opening.task.add_done_callback(_close_quietly)
        return True

    async def _open(self, host: str, port: int, tls: bool, timeout: float) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout=timeout)
        if tls:
            try:
                stream = await stream.start_tls(self._ssl_context, server_hostname=host, timeout=timeout)
            except BaseException:
                await stream.aclose()
                raise
        return OpenedAhead(stream, tls)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        opening = self._openings.pop((host, port), None)
        if opening is not None:
            stream = await self._taken(opening, timeout)
            if stream is not None:
                return stream
        return await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)

    async def _taken(self, opening: _Opening, timeout: float | None) -> httpcore.AsyncNetworkStream | None:
        """The connection opened ahead, once open; None when it failed, or went stale before it was taken."""
        try:
            async with asyncio.timeout(timeout):
                stream = await asyncio.shield(opening.task)
        except asyncio.CancelledError:
            opening.task.add_done_callback(_close_quietly)
            raise
        except Exception:  # failed or too slow: the pool opens one itself, and reports that one's failure
            opening.task.add_done_callback(_close_quietly)
            return None
        assert isinstance(stream, OpenedAhead)
        if time.monotonic() - opening.started_at > self._keepalive_seconds or stream.looks_closed():
            await stream.aclose()  # unused too long, or already closed by the provider
            return None
        return stream  # if the provider closed it unseen, the request is sent again at once (RelayTransport)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    async def aclose(self) -> None:
        openings, self._openings = self._openings, {}
        for opening in openings.values():
            opening.task.cancel()
            with contextlib.suppress(BaseException):
                await (await opening.task).aclose()


class RelayTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over the opening backend, which also sends a request again at once when it met a dead
    pooled connection before any byte of the response."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, limits=limits)
        assert limits.keepalive_expiry is not None
        self.backend = OpeningBackend(ssl_context, limits.keepalive_expiry)
        self._pool._network_backend = self.backend  # the one private attribute: see the module's docstring
        self.used: set[Origin] = set()

    def has_idle_connection(self, origin: Origin) -> bool:
        """Whether the pool holds a connection to ``origin`` that the next request can take as it is."""
        target = httpcore.Origin(origin[0].encode(), origin[1].encode(), origin[2])
        return any(connection.can_handle_request(target) and connection.is_idle() and not connection.has_expired()
                   for connection in self._pool.connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.used.add(origin_of(request.url))
        replayable = isinstance(request.stream, httpx.ByteStream)
        # Each dead pooled connection that fails leaves the pool, so this ends; bounded all the same.
        for _ in range(MAX_STALE_ATTEMPTS):
            opened = _watch_connecting(request)
            try:
                return await super().handle_async_request(request)
            except STALE_CONNECTION_ERRORS as exc:
                if opened() or not replayable:
                    raise  # a new connection failed: the provider's own failure, for the turn's retries to judge
                telemetry.logger.info("a pooled provider connection had been closed: the request is sent again on a "
                                      "new one", extra={"host": request.url.host, "error": type(exc).__name__})
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        await super().aclose()
        await self.backend.aclose()

    async def __aexit__(self, *exc_info: Any) -> None:  # what ``async with client`` calls, not aclose()
        await super().__aexit__(*exc_info)
        await self.backend.aclose()


def _watch_connecting(request: httpx.Request) -> Any:
    """Wraps the request's trace hook (keeping any the caller set) to see whether it opened a connection of its
    own, as opposed to one that was pooled or opened ahead, which may have been closed unseen."""
    opened = False
    inner = request.extensions.get("trace")
    inner = getattr(inner, "inner", inner)  # a retry: the caller's own hook, not our wrapper of it

    async def trace(event: str, info: dict[str, Any]) -> None:
        nonlocal opened
        if event == "connection.connect_tcp.complete" and not isinstance(info.get("return_value"), OpenedAhead):
            opened = True
        if inner is not None:
            await inner(event, info)

    trace.inner = inner  # type: ignore[attr-defined]
    request.extensions = {**request.extensions, "trace": trace}
    return lambda: opened


class Connections:
    """The process's one HTTP client (providers and the JWKS share it), and the provider origins kept warm."""

    def __init__(self, *, read_timeout: float, keepalive_seconds: float = config.PROVIDER_KEEPALIVE_SECONDS,
                 connect_timeout: float = config.PROVIDER_CONNECT_TIMEOUT_SECONDS, warm: bool = True) -> None:
        # One context for the pool and the connections opened ahead (creating one costs ~20 ms).
        ssl_context = httpx.create_ssl_context()
        ssl_context.set_alpn_protocols(["http/1.1"])  # what httpcore sets for HTTP/1.1, before each handshake too
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=keepalive_seconds)
        self.transport = RelayTransport(ssl_context, limits)
        self.http = httpx.AsyncClient(transport=self.transport,
                                      timeout=httpx.Timeout(read_timeout, connect=connect_timeout))
        self._connect_timeout = connect_timeout
        self._warm = warm
        self._providers: set[Origin] = set()  # the origins of the providers that may serve
        self._let_go: set[Origin] = set()  # of those, the ones this process has not used: warmed once, not again

    def warm(self, urls: Iterable[str]) -> None:
        """Opens a connection ahead to each of these origins: at readiness, every provider's that may serve."""
        if not self._warm:
            return
        self._providers |= {origin_of(url) for url in urls if httpx.URL(url).scheme in ("http", "https")}
        self.keep_warm()

    def keep_warm(self) -> None:
        """On a chat request, before the store read: a connection opened ahead to each provider origin that has no
        usable one. An origin whose connection opened ahead went unused for the keep-alive is let go, until this
        process sends a request there."""
        backend, used = self.transport.backend, self.transport.used
        for origin in self._providers:
            if backend.drop_unused(origin) and origin not in used:
                self._let_go.add(origin)
            if origin in self._let_go and origin not in used:
                continue
            if not (backend.has_opening(origin) or self.transport.has_idle_connection(origin)):
                backend.open_ahead(origin, self._connect_timeout)

    async def aclose(self) -> None:
        await self.http.aclose()


def _retrieve(task: asyncio.Task[httpcore.AsyncNetworkStream]) -> None:
    if not task.cancelled() and task.exception() is not None:
        telemetry.logger.debug("a connection opened ahead failed", extra={"error": type(task.exception()).__name__})


def _close_quietly(task: asyncio.Task[httpcore.AsyncNetworkStream]) -> None:
    """Closes a connection opened ahead that nobody will take, once it is open."""
    if task.cancelled() or task.exception() is not None:
        return
    stream = task.result()
    close = asyncio.ensure_future(stream.aclose())
    close.add_done_callback(lambda done: done.cancelled() or done.exception())
