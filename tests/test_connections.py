"""Provider connections opened ahead and kept fresh, over real loopback HTTP: the simulated provider behind a proxy
(devtools/latency_proxy.py) that counts connections and closes idle ones as providers do, announced or not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from devtools.latency_proxy import LatencyProxy
from devtools.local_run import LocalRun
from devtools.simulated_provider import answer_tokens
from relay.connections import Connections, origin_of
from tests.helpers import app_client, messages_of, new_session, stream_chat, wait_for

MODEL = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault_at=19"  # its own: tests count by model


@contextmanager
def provider_behind(stack: LocalRun, **proxy: Any) -> Iterator[LatencyProxy]:
    upstream = httpx.URL(stack.provider_server.url)
    running = LatencyProxy((upstream.host, upstream.port), **proxy).start()
    try:
        yield running
    finally:
        running.stop()


def ended(caplog: pytest.LogCaptureFixture, chat_session_id: str) -> Any:
    [record] = [r for r in caplog.records if r.getMessage() == "stream ended" and r.chat_session_id == chat_session_id]
    return record


def test_the_first_request_of_a_process_takes_the_connection_opened_at_readiness(stack, dynamodb, caplog):
    # GIVEN a new process whose provider sits behind a proxy that counts connections
    with provider_behind(stack) as proxy, app_client(dynamodb, simulated_provider_url=proxy.url() + "/v1") as client:
        wait_for(lambda: proxy.counts.connections == 1)  # opened at readiness, before any request
        chat_session_id = new_session(client, MODEL)
        # WHEN its first chat request streams
        received = stream_chat(client, chat_session_id)
    # THEN the provider request went on that connection: no second one was opened
    assert received.tokens == answer_tokens(4)
    assert ended(caplog, chat_session_id).provider_connection == "opened ahead"
    assert proxy.counts.connections == 1


def test_without_preconnect_the_first_request_opens_its_own_connection(stack, dynamodb, caplog):
    with provider_behind(stack) as proxy, app_client(dynamodb, simulated_provider_url=proxy.url() + "/v1",
                                                     provider_preconnect=False) as client:
        chat_session_id = new_session(client, MODEL)
        assert proxy.counts.connections == 0
        stream_chat(client, chat_session_id)
    assert ended(caplog, chat_session_id).provider_connection == "new"


def test_a_connection_the_provider_closed_while_the_process_slept_is_reopened_during_the_store_read(
        stack, dynamodb, caplog):
    # GIVEN a provider that closes connections idle for 0.3 s, as providers close idle keep-alive connections
    with provider_behind(stack, idle_close_seconds=0.3) as proxy, \
            app_client(dynamodb, simulated_provider_url=proxy.url() + "/v1") as client:
        chat_session_id = new_session(client, MODEL)
        stream_chat(client, chat_session_id)
        # WHEN the next message comes after the provider has closed the pooled connection
        wait_for(lambda: proxy.counts.closed_idle >= 1)
        second = stream_chat(client, chat_session_id, "And again")
    # THEN that request found a connection opened when it arrived, not one it had to open after its read
    assert second.tokens == answer_tokens(4)
    [_, second_turn] = [r for r in caplog.records
                        if r.getMessage() == "stream ended" and r.chat_session_id == chat_session_id]
    assert second_turn.provider_connection == "opened ahead"


def test_a_request_on_a_connection_closed_unannounced_is_sent_again_at_once_and_nothing_fails(
        stack, dynamodb, capsys, caplog):
    # GIVEN a provider whose idle close the relay does not see coming: it drops the next request on that connection
    # (the close crossing the request on the wire, or reaching a process frozen between invocations)
    with provider_behind(stack, idle_close_seconds=0.3, announced=False) as proxy, \
            app_client(dynamodb, simulated_provider_url=proxy.url() + "/v1", provider_max_retries=2) as client:
        chat_session_id = new_session(client, MODEL)
        stream_chat(client, chat_session_id)
        time.sleep(0.5)
        capsys.readouterr()
        # WHEN the next message goes out on the pooled connection, now dead
        second = stream_chat(client, chat_session_id, "After a pause")
        answer = messages_of(client, chat_session_id)[-1]
    # THEN it was sent again on a new connection at once: the answer streamed, with no failed attempt and no retry
    assert proxy.counts.dropped_on_arrival == 1
    assert second.tokens == answer_tokens(4)
    assert answer["status"] == "complete" and "attempts" not in answer["metadata"]
    [stale] = [r for r in caplog.records if r.getMessage().startswith("a pooled provider connection had been closed")]
    assert stale.host == "127.0.0.1"
    second_turn = [r for r in caplog.records
                   if r.getMessage() == "stream ended" and r.chat_session_id == chat_session_id][-1]
    assert second_turn.provider_connection == "new"
    assert '"Retries":[0.0]' in capsys.readouterr().out


def test_a_provider_that_cannot_be_reached_fails_the_turn_as_before_and_the_warm_up_leaves_no_trace(
        stack, dynamodb, caplog):
    # GIVEN a provider address nothing listens on (the warm-up at readiness fails quietly)
    with provider_behind(stack) as proxy:
        unreachable = proxy.url() + "/v1"
    with app_client(dynamodb, simulated_provider_url=unreachable) as client:
        chat_session_id = new_session(client, MODEL)
        # WHEN a turn asks it
        received = stream_chat(client, chat_session_id)
    # THEN the turn fails with the code a connection failure always had
    assert received.one("error")["code"] == "provider_unavailable"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_an_idle_connection_is_dropped_by_the_pool_before_a_provider_would_drop_it():
    async def run() -> tuple[bool, bool]:
        connections = Connections(read_timeout=5, keepalive_seconds=0.2, warm=False)
        async with connections.http:
            with provider_server() as url:
                await connections.http.get(url)
                origin = origin_of(url)
                fresh = connections.transport.has_idle_connection(origin)
                await asyncio.sleep(0.3)
                return fresh, connections.transport.has_idle_connection(origin)

    fresh, after_the_keepalive = asyncio.run(run())
    assert fresh and not after_the_keepalive


@contextmanager
def provider_server() -> Iterator[str]:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from devtools.servers import UvicornThread

    server = UvicornThread(Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])).start()
    try:
        yield server.url + "/"
    finally:
        server.stop()


def test_over_tls_a_connection_opened_ahead_is_taken_though_its_session_tickets_left_it_readable(
        stack, tmp_path, monkeypatch):
    import ssl

    import trustme

    from relay.providers import ChatMessage, ChatRequest
    from relay.providers.keys import StaticKey
    from relay.providers.openai import OpenAIChatCompletions

    # GIVEN the provider behind TLS 1.3, with a certificate the relay trusts for the test
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with provider_behind(stack, tls=server) as proxy:
        url = proxy.url("https")

        async def run() -> str | None:
            connections = Connections(read_timeout=5)
            async with connections.http:
                # WHEN a connection is opened ahead and its session tickets have arrived unread
                connections.warm([url])
                await asyncio.sleep(0.3)
                provider = OpenAIChatCompletions(connections.http, name="openai", base_url=url + "/v1",
                                                 key=StaticKey("OPENAI_API_KEY", "k"))
                request = ChatRequest(MODEL, [ChatMessage("user", "hi")])
                async for _batch in provider.stream(request):
                    pass
                return request.exchange.connection

        # THEN the request takes it: readable is no sign of a close before the first read over TLS
        assert asyncio.run(run()) == "opened ahead"
        assert proxy.counts.connections == 1
