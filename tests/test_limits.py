"""Per-user limits over real loopback HTTP, stored in moto's DynamoDB: requests per minute and streams at once."""

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from httpx_sse import connect_sse
from ulid import ULID

import relay.limits
from devtools.local_run import LIMITS_TABLE_NAME, TABLE_NAME
from devtools.servers import UvicornThread
from relay.app import create_app
from relay.config import STREAM_LEASE_DEADLINE_MARGIN_SECONDS, Settings
from relay.dynamodb import DynamoDB
from relay.limits import Limits, TooManyRequests
from relay.store import ChatStore
from tests.helpers import HeaderUser, count_items

SLOW = "sim:first_token_ms=0,tokens_per_second=10,tokens=20"
FAST = "sim:first_token_ms=0,tokens_per_second=0,tokens=2"


@pytest.fixture(scope="module")
def limited_url(stack, dynamodb) -> Iterator[str]:
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME, requests_per_minute=3,
                       concurrent_streams=1)
    app = create_app(settings, store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb),
                     authenticator=lambda http: HeaderUser())
    server = UvicornThread(app).start()
    yield server.url
    server.stop()


@pytest.fixture()
def user(limited_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited_url, timeout=30, headers={"x-test-user": f"user-{ULID()}"}) as client:
        yield client


def chat(client: httpx.Client, model: str = FAST) -> httpx.Response:
    chat_session_id = client.post("/sessions", json={"provider": "simulated", "model": model}).json()["chatSessionId"]
    return client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"})


def away_from_a_window_edge() -> None:
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_the_request_over_the_per_minute_limit_gets_429_with_retry_after(user, dynamodb):
    away_from_a_window_edge()
    assert [chat(user).status_code for _ in range(3)] == [200, 200, 200]
    before = count_items(dynamodb)
    refused = chat(user)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert count_items(dynamodb) == before + 1  # the session that chat() created; the refused turn wrote nothing


def test_limits_are_per_user(limited_url):
    away_from_a_window_edge()
    with httpx.Client(base_url=limited_url, timeout=30) as client:
        for name in ("dora", "eve"):
            client.headers["x-test-user"] = f"{name}-{ULID()}"
            assert [chat(client).status_code for _ in range(3)] == [200, 200, 200]


def test_a_second_stream_at_once_gets_429_and_the_lease_returns_when_the_first_ends(user):
    chat_session_id = user.post("/sessions", json={"provider": "simulated", "model": SLOW}).json()["chatSessionId"]
    first_token = threading.Event()
    finished = threading.Event()

    def long_stream() -> None:
        with connect_sse(user, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as s:
            for sse in s.iter_sse():
                if sse.event == "token":
                    first_token.set()
        finished.set()

    thread = threading.Thread(target=long_stream)
    thread.start()
    assert first_token.wait(10)
    second = user.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "again"})
    assert second.status_code == 429 and "at once" in second.json()["error"]["message"]
    thread.join(20)
    assert finished.is_set()
    assert user.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "now"}).status_code == 200


def limits_for_one_stream(dynamodb) -> Limits:
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME, requests_per_minute=0,
                       concurrent_streams=1)
    return Limits(DynamoDB(lambda: dynamodb), settings)


def test_a_lease_left_by_a_crashed_run_is_free_again_once_it_expires(stack, dynamodb, monkeypatch):
    # GIVEN leases that live one second unless renewed, and a run that took one and died (never released it)
    monkeypatch.setattr(relay.limits, "STREAM_LEASE_SECONDS", 1)
    limits, user_id = limits_for_one_stream(dynamodb), f"crashed-{ULID()}"
    assert asyncio.run(limits.admit(user_id)) is not None
    # WHEN the user streams again at once THEN the dead run's lease still counts
    with pytest.raises(TooManyRequests):
        asyncio.run(limits.admit(user_id))
    # WHEN it has expired THEN it is freed, and the new stream admitted
    time.sleep(2.1)
    assert asyncio.run(limits.admit(user_id)) is not None


def test_a_live_run_keeps_its_lease_by_renewing_it(stack, dynamodb, monkeypatch):
    monkeypatch.setattr(relay.limits, "STREAM_LEASE_SECONDS", 4)
    limits, user_id = limits_for_one_stream(dynamodb), f"renewing-{ULID()}"
    lease = asyncio.run(limits.admit(user_id))
    first_expiry = lease.expires_at
    time.sleep(2.1)
    asyncio.run(lease.renew())
    assert lease.expires_at >= first_expiry + 2  # whole seconds
    time.sleep(first_expiry - time.time() + 0.5)  # past the first expiry, within the renewed one
    with pytest.raises(TooManyRequests):
        asyncio.run(limits.admit(user_id))
    asyncio.run(lease.release())
    assert asyncio.run(limits.admit(user_id)) is not None


def test_a_lease_never_outlives_its_runs_deadline_by_more_than_the_margin(stack, dynamodb):
    limits, user_id = limits_for_one_stream(dynamodb), f"deadline-{ULID()}"
    deadline = time.time() + 3
    lease = asyncio.run(limits.admit(user_id, deadline_ms=int(deadline * 1000)))
    assert lease.expires_at <= deadline + STREAM_LEASE_DEADLINE_MARGIN_SECONDS
    asyncio.run(lease.renew())
    assert lease.expires_at <= deadline + STREAM_LEASE_DEADLINE_MARGIN_SECONDS


def test_a_refused_request_leaves_no_claim_so_its_retry_is_a_new_turn(user, dynamodb):
    away_from_a_window_edge()
    # GIVEN one stream running, which is this user's limit
    chat_session_id = user.post("/sessions", json={"provider": "simulated", "model": SLOW}).json()["chatSessionId"]
    body = {"chatSessionId": chat_session_id, "content": "again", "clientMessageId": f"client-{ULID()}"}
    with connect_sse(user, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as first:
        events = first.iter_sse()
        next(event for event in events if event.event == "token")
        # WHEN a request with a clientMessageId is refused
        before = count_items(dynamodb)
        assert user.post("/chat/stream", json=body).status_code == 429
        assert count_items(dynamodb) == before  # its claim was given back
        list(events)
    # THEN the client's retry, once the first stream has ended, is a turn of its own, answered at once
    started = time.monotonic()
    with connect_sse(user, "POST", "/chat/stream", json=body) as retry:
        names = [event.event for event in retry.iter_sse()]
    assert names[0] == "start" and names[-1] == "done"
    assert time.monotonic() - started < 10  # not a wait for a phantom turn
    messages = user.get(f"/sessions/{chat_session_id}/messages").json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hi", "again"]


def test_resumes_are_streams_too_so_a_flood_of_them_is_refused(user):
    away_from_a_window_edge()
    # GIVEN a user whose one allowed stream is an answer being generated
    chat_session_id = user.post("/sessions", json={"provider": "simulated", "model": SLOW}).json()["chatSessionId"]
    with connect_sse(user, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as first:
        events = first.iter_sse()
        message_id = next(event for event in events if event.event == "start").json()["messageId"]
        # WHEN the client also follows it from an offset THEN that stream is over the limit
        resumed = user.get(f"/sessions/{chat_session_id}/messages/{message_id}/stream?offset=0")
        assert resumed.status_code == 429
        assert resumed.json()["error"]["code"] == "rate_limited" and "retry-after" in resumed.headers
        list(events)
    # AND once the answer has ended, following it works again (the third request of this minute)
    with connect_sse(user, "GET", f"/sessions/{chat_session_id}/messages/{message_id}/stream") as again:
        assert [event.event for event in again.iter_sse()][-1] == "done"


def test_the_lease_returns_with_done_not_after_a_model_made_title(stack, dynamodb):
    # GIVEN one stream at a time, and a title model slow to answer
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME, requests_per_minute=0,
                       concurrent_streams=1, title_model=("simulated", "sim:first_token_ms=3000,tokens=3"))
    app = create_app(settings, store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb),
                     authenticator=lambda http: HeaderUser())
    server = UvicornThread(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers={"x-test-user": f"user-{ULID()}"}) as user:
            chat_session_id = user.post("/sessions", json={"provider": "simulated", "model": FAST}).json()[
                "chatSessionId"]
            # WHEN a first answer is done, its stream still open while the session is named
            with connect_sse(user, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                                 "content": "hi"}) as source:
                events = source.iter_sse()
                while next(events).event != "done":
                    pass
                # THEN the next message, sent at once (the page sends a queued one on done), is not refused
                second = user.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "next"})
                assert second.status_code == 200, second.text
                assert "event: done" in second.text
    finally:
        server.stop()
