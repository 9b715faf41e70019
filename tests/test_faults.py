"""Faults that real deployments meet, over real loopback HTTP: junk in the stream, a slow drip, and a DynamoDB
write throttled once (botocore's standard retries must make it land)."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devtools.local_run import TABLE_NAME
from devtools.servers import UvicornThread
from devtools.simulated_provider import answer_tokens
from relay.records import StoredMessage
from relay.store import ChatStore
from tests.helpers import messages_of, new_session, stream_chat

THROTTLED = b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",' \
            b'"message":"The level of configured provisioned throughput for the table was exceeded."}'


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "openai-responses", "azure-openai"])
def test_keep_alives_and_junk_lines_between_events_change_nothing(client, provider):
    chat_session_id = client.post("/sessions", json={
        "provider": provider, "model": "sim:first_token_ms=0,tokens_per_second=0,tokens=12,fault=garbage",
    }).json()["chatSessionId"]
    received = stream_chat(client, chat_session_id)
    assert received.tokens == answer_tokens(12)
    assert received.one("done")


def test_a_slow_drip_under_the_idle_timeout_streams_to_the_end(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=4,tokens=6")
    received = stream_chat(client, chat_session_id)
    assert received.tokens == answer_tokens(6)
    assert received.one("done")["tokensPerSecond"] < 10


class ThrottlingProxy:
    """Between the relay and moto: answers the first BatchWriteItem with DynamoDB's throttling error."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.throttled = 0
        self.targets: list[str] = []
        self.app = Starlette(routes=[Route("/", self.forward, methods=["POST"])])

    async def forward(self, request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        self.targets.append(target.rpartition(".")[2])
        if target.endswith("BatchWriteItem") and not self.throttled:
            self.throttled += 1
            return Response(THROTTLED, status_code=400, media_type="application/x-amz-json-1.0")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient() as http:
            upstream = await http.post(self.upstream, content=await request.body(), headers=headers)
        return Response(upstream.content, status_code=upstream.status_code,
                        media_type=upstream.headers.get("content-type"))


@pytest.fixture()
def proxy(stack) -> Iterator[tuple[ThrottlingProxy, str]]:
    proxy = ThrottlingProxy(stack.dynamodb.url)
    server = UvicornThread(proxy.app).start()
    yield proxy, server.url
    server.stop()


def test_a_write_throttled_once_still_lands_through_botocores_retries(stack, client, proxy, monkeypatch):
    throttling, url = proxy
    chat_session_id = new_session(client, "sim")
    # GIVEN the production client factory, pointed at the proxy the standard way
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    store = ChatStore(TABLE_NAME, ttl_days=1)
    message = StoredMessage("01HZY00000000000000000MSG1", "ai", "kept", "complete", "2026-01-01T00:00:00.000Z")
    # WHEN a write is throttled once
    asyncio.run(store.put_messages(chat_session_id, message))
    # THEN botocore retried it and it landed
    assert throttling.throttled == 1
    assert throttling.targets.count("BatchWriteItem") == 2
    assert [m["content"] for m in messages_of(client, chat_session_id)] == ["kept"]
