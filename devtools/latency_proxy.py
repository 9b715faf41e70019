"""A TCP proxy on loopback that makes a connection cost what it costs across a network, and can close idle
connections the way providers do (or, with a server certificate, terminate TLS in front of a plain server).

    client ──► proxy (RTT/2 each way; a new connection's first bytes wait one RTT more) ──► upstream

Loopback connects in microseconds, so the proxy charges the TCP handshake as a delay of the connection's first
bytes: a TLS 1.3 handshake through it then costs one more RTT, and each request one RTT plus the upstream's own
time, as across a network. Bytes keep their order and are never split or merged; bandwidth is not limited.

With ``idle_close_seconds`` it also closes a connection that carried nothing for that long: ``announced`` (the
default) with a FIN once the time is up, as a provider's idle timeout does; or unannounced, only when the next
request arrives, which it drops: what a client meets when the close crosses its request on the wire, or when its
process was frozen (Lambda between invocations) while the close came.

Hand-written: the tools that do this (Toxiproxy, tc netem) are a server of their own to install, or need root and
would slow every loopback connection of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from devtools.servers import HOST

READ_SIZE = 65_536


@dataclass
class ProxyCounts:
    connections: int = 0  # accepted from clients
    closed_idle: int = 0  # closed by the idle timeout, announced
    dropped_on_arrival: int = 0  # closed, unannounced, as a request arrived on it


class LatencyProxy:
    """``rtt_ms`` of round trip to ``upstream`` (host, port), in a thread of its own until ``stop()``."""

    def __init__(self, upstream: tuple[str, int], rtt_ms: float = 0.0, *, idle_close_seconds: float | None = None,
                 announced: bool = True, tls: ssl.SSLContext | None = None, host: str = HOST) -> None:
        self.upstream = upstream
        self.tls = tls  # given, the proxy serves TLS to its clients (and plain TCP upstream): a TLS terminator
        self.delay = rtt_ms / 2000  # one way, in seconds
        self.idle_close_seconds = idle_close_seconds
        self.announced = announced
        self.counts = ProxyCounts()
        self._host = host
        self._port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> LatencyProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self._host, 0, ssl=self.tls), self._loop).result(timeout=10)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self._port

    def url(self, scheme: str = "http", host: str | None = None) -> str:
        return f"{scheme}://{host or self._host}:{self._port}"

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._proxy(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # stopped: asyncio would log a cancelled connection handler as an error
        finally:
            self._tasks.discard(task)

    async def _proxy(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        loop = asyncio.get_running_loop()
        connected_at = loop.time() + 2 * self.delay  # the handshake's round trip, charged to the first bytes
        connection = _Connection(loop.time())
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        try:
            pumps = [self._pump(client_reader, upstream_writer, connection, connected_at, inbound=True),
                     self._pump(upstream_reader, client_writer, connection, 0.0, inbound=False)]
            if self.idle_close_seconds is not None and self.announced:
                pumps.append(self._close_when_idle(connection))
            await _first_to_end_or_all(pumps, connection)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()  # no TLS close_notify to wait for: both ends are done, or stopped

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection,
                    not_before: float, *, inbound: bool) -> None:
        """One direction: each read is stamped when it arrives and written once its delay is over, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                release_at, data = item
                await asyncio.sleep(max(0.0, release_at - loop.time()))
                writer.write(data)
                await writer.drain()
                connection.last_active = loop.time()
            if writer.can_write_eof():
                writer.write_eof()

        delivering = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(READ_SIZE):
                now = loop.time()
                if (inbound and not self.announced and self.idle_close_seconds is not None
                        and now - connection.last_active > self.idle_close_seconds):
                    self.counts.dropped_on_arrival += 1
                    connection.closed = True
                    return
                connection.last_active = now
                queue.put_nowait((max(now, not_before) + self.delay, data))
            queue.put_nowait(None)
            await delivering
        finally:
            delivering.cancel()
            with contextlib.suppress(BaseException):
                await delivering

    async def _close_when_idle(self, connection: _Connection) -> None:
        assert self.idle_close_seconds is not None
        loop = asyncio.get_running_loop()
        while True:
            idle = loop.time() - connection.last_active
            if idle >= self.idle_close_seconds:
                self.counts.closed_idle += 1
                connection.closed = True
                return
            await asyncio.sleep(self.idle_close_seconds - idle)


@dataclass
class _Connection:
    last_active: float
    closed: bool = False


async def _first_to_end_or_all(pumps: list[Coroutine[Any, Any, None]], connection: _Connection) -> None:
    """Runs both directions (and the idle timer) until both directions end, or one side closes the connection."""
    tasks = [asyncio.ensure_future(pump) for pump in pumps]
    try:
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if connection.closed or all(task.done() for task in tasks[:2]):
                return
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
