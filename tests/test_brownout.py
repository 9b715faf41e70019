"""A DynamoDB brownout, as the relay meets it over real loopback HTTP: the table hangs or refuses connections
(a TCP proxy between the app and moto's server), or a write keeps failing. Tokens keep flowing, every stream ends
with a terminal event, other routes answer 503 within a bounded time, and the metrics say what happened."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devtools.local_run import LIMITS_TABLE_NAME, TABLE_NAME
from devtools.servers import UvicornThread
from devtools.simulated_provider import answer_tokens
from relay.app import create_app
from relay.config import STORE_CALL_TIMEOUT_SECONDS, Settings
from relay.store import ChatStore
from tests.helpers import Received, emf_lines, messages_of, new_session
from tests.outage import FaultyProxy

SLOW = "sim:first_token_ms=0,tokens_per_second=20,tokens=60"  # three seconds of answer
# A route's answer during an outage: the store's budget for one call, plus scheduling slack on a busy machine.
BOUNDED_SECONDS = STORE_CALL_TIMEOUT_SECONDS + 2


@pytest.fixture()
def proxy(stack) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(stack.dynamodb.url)
    yield proxy
    proxy.close()


@pytest.fixture()
def relay(stack, proxy, monkeypatch) -> Iterator[httpx.Client]:
    """An app with the production DynamoDB client (its timeouts and retries), reaching the store through the proxy,
    with the per-user limits on (their lease must be given back whatever the store does)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME, concurrent_streams=3,
                       requests_per_minute=0, checkpoint_seconds=0.3)
    server = UvicornThread(create_app(settings, ChatStore(TABLE_NAME, ttl_days=1))).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def stream_with_times(client: httpx.Client, chat_session_id: str, after_tokens: int = -1,
                      then: Any = None) -> tuple[Received, list[float]]:
    """The turn's events and the arrival time of each token, then of the last event, then of the stream's end;
    ``then()`` is called once ``after_tokens`` tokens have come."""
    received, times = Received(), []
    body = {"chatSessionId": chat_session_id, "content": "hello"}
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():  # a cut chunked body would raise here
            received.events.append((sse.event, sse.json()))
            if sse.event == "token":
                times.append(time.perf_counter())
                if len(times) == after_tokens:
                    then()
        times.append(time.perf_counter())
    times.append(time.perf_counter())
    return received, times


@pytest.mark.parametrize("fault", ["pause", "refuse"])
def test_tokens_keep_flowing_while_the_store_fails_and_the_stream_ends_with_store_unavailable(
        relay, proxy, fault, capsys):
    chat_session_id = new_session(relay, SLOW)
    # WHEN the store hangs (or refuses connections) after the fifth token, while checkpoints fall due every 0.3 s
    received, arrivals = stream_with_times(relay, chat_session_id, 5, getattr(proxy, fault))
    *times, terminal, closed = arrivals
    # THEN every token still came, at the provider's pace (a checkpoint waiting on the store would stall them)
    assert received.tokens == answer_tokens(60)
    assert max(later - earlier for earlier, later in itertools.pairwise(times)) < 1.0
    # AND the stream ended properly, with a terminal error, soon after the answer
    names = [name for name, _ in received.events]
    assert names[0] == "start" and names[-1] == "error" and "done" not in names
    assert received.one("error")["code"] == "store_unavailable"
    assert terminal - times[-1] < BOUNDED_SECONDS  # the final write's budget
    assert closed - terminal < 1 + 1  # the lease's release, at most a second
    # AND the metrics say the store failed the turn, not that the client left
    [turn] = [blob for blob in emf_lines(capsys.readouterr().out)
              if "Requests" in blob and blob.get("model") == SLOW]
    assert turn["StreamErrors"] == [1.0] and turn["ClientDisconnects"] == [0.0] and turn["StreamCompleted"] == [0.0]
    # AND once the store is back, the accepted message is there
    proxy.heal()
    user, answer = messages_of(relay, chat_session_id)
    assert (user["messageId"], user["content"]) == (received.one("start")["userMessageId"], "hello")
    assert answer["content"] == "".join(answer_tokens(60))[:len(answer["content"])]  # what the last checkpoint held


def test_other_routes_answer_503_with_retry_after_within_a_bounded_time_while_the_store_hangs(relay, proxy):
    chat_session_id = new_session(relay)
    message_id = "01HZY0000000000000000MSG01"
    proxy.pause()
    requests = [
        ("GET", f"/sessions/{chat_session_id}/messages", None),
        ("POST", "/sessions", {"provider": "simulated", "model": "sim"}),
        ("POST", "/chat/stream", {"chatSessionId": chat_session_id, "content": "hi"}),
        ("POST", f"/sessions/{chat_session_id}/messages/{message_id}/cancel", None),
        ("GET", f"/sessions/{chat_session_id}/messages/{message_id}/stream", None),
    ]
    for method, path, body in requests:
        started = time.perf_counter()
        response = relay.request(method, path, json=body)
        assert time.perf_counter() - started < BOUNDED_SECONDS, path
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"]["code"] == "store_unavailable"
        assert int(response.headers["retry-after"]) > 0
    assert relay.get("/providers").status_code == 200  # what needs no store still works
    proxy.heal()
    assert relay.get(f"/sessions/{chat_session_id}/messages").status_code == 200


class FailingWrites:
    """An HTTP proxy in front of moto that answers the calls ``failing(operation, body)`` picks with DynamoDB's 500,
    and the calls ``answered_late(operation, body)`` picks only after they have landed and the relay's budget for
    them has run out (the answer lost on its way back). A transaction sent again with its ClientRequestToken (what
    botocore's retries do) is not applied twice, as DynamoDB promises for ten minutes; moto alone would."""

    ERROR = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}'

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing: Callable[[str, bytes], bool] = lambda operation, body: False
        self.answered_late: Callable[[str, bytes], bool] = lambda operation, body: False
        self.applied: dict[str, httpx.Response] = {}  # transactions by ClientRequestToken
        self.app = Starlette(routes=[Route("/", self.forward, methods=["POST"])])

    async def forward(self, request: Request) -> Response:
        operation, body = request.headers.get("x-amz-target", "").rpartition(".")[2], await request.body()
        if self.failing(operation, body):
            return Response(self.ERROR, status_code=500, media_type="application/x-amz-json-1.0")
        token = json.loads(body).get("ClientRequestToken") if operation == "TransactWriteItems" else None
        upstream = self.applied.get(token) if token else None
        if upstream is None:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with httpx.AsyncClient() as http:
                upstream = await http.post(self.upstream, content=body, headers=headers)
            if token and upstream.status_code == 200:
                self.applied[token] = upstream
        if self.answered_late(operation, body):
            await asyncio.sleep(STORE_CALL_TIMEOUT_SECONDS + 1)
        return Response(upstream.content, status_code=upstream.status_code,
                        media_type=upstream.headers.get("content-type"))


@pytest.fixture()
def failing_store(stack, monkeypatch) -> Iterator[tuple[FailingWrites, httpx.Client]]:
    """An app with the production DynamoDB client (its timeouts and retries), reaching the store through
    FailingWrites, and a client of it."""
    failing = FailingWrites(stack.dynamodb.url)
    proxy = UvicornThread(failing.app).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    server = UvicornThread(create_app(store=ChatStore(TABLE_NAME, ttl_days=1))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield failing, client
    finally:
        server.stop()
        proxy.stop()


def test_a_message_that_cannot_be_stored_is_not_announced_and_its_retry_is_a_new_turn(failing_store):
    failing, client = failing_store
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    body = {"chatSessionId": chat_session_id, "content": "hello", "clientMessageId": "retry-me"}
    # WHEN the write of the message fails (after botocore's retries)
    failing.failing = lambda operation, body: operation == "TransactWriteItems" and b'"MSG#' in body
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        events = [(sse.event, sse.json()) for sse in source.iter_sse()]
    # THEN the client never got a start for it, only a terminal error, and nothing is stored
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["code"] == "store_unavailable"
    assert messages_of(client, chat_session_id) == []
    # WHEN the store is back THEN the same request is a turn of its own, stored whole
    failing.failing = lambda operation, body: False
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        names = [sse.event for sse in source.iter_sse()]
    assert names[0] == "start" and names[-1] == "done"
    assert [m["role"] for m in messages_of(client, chat_session_id)] == ["user", "ai"]


def test_a_message_whose_write_landed_though_its_answer_never_came_is_accepted_and_answered(failing_store):
    failing, client = failing_store
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    body = {"chatSessionId": chat_session_id, "content": "hello", "clientMessageId": "landed"}
    # WHEN the write of the message (with its pending answer) lands, but DynamoDB's answer to it comes after the
    # relay gave up on it
    failing.answered_late = lambda operation, body: operation == "TransactWriteItems" and b'"pending"' in body
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        events = [(sse.event, sse.json()) for sse in source.iter_sse()]
    failing.answered_late = lambda operation, body: False
    # THEN the client is not told that nothing was kept: the message is stored, so it is answered
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    start = events[0][1]
    user, answer = messages_of(client, chat_session_id)
    assert (user["messageId"], user["content"]) == (start["userMessageId"], "hello")
    assert (answer["messageId"], answer["status"]) == (start["messageId"], "complete")
    assert answer["content"] == "".join(answer_tokens(5))


def test_a_request_refused_while_its_claim_landed_unseen_gives_the_claim_back(failing_store):
    failing, client = failing_store
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    body = {"chatSessionId": chat_session_id, "content": "hello", "clientMessageId": "claimed-unseen"}
    # WHEN the claim lands but DynamoDB's answer to it comes after the relay gave up: a 503
    failing.answered_late = lambda operation, body: operation == "TransactWriteItems" and b"CLIENT#" in body \
        and b'"MSG#' not in body
    refused = client.post("/chat/stream", json=body)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable"
    failing.answered_late = lambda operation, body: False
    # THEN the client's retry, as Retry-After invites, is a turn of its own, answered at once
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        names = [sse.event for sse in source.iter_sse()]
    assert names[0] == "start" and names[-1] == "done"  # not a join of a first attempt that never was
    assert [m["role"] for m in messages_of(client, chat_session_id)] == ["user", "ai"]
