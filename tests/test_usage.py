"""What each user spends, and token budgets: usage added up per UTC day and month in moto's limits table, read by
GET /usage; a user at a budget refused with 429 until the period ends, checked alongside the one read. The
period boundaries are crossed with an injected clock, never by waiting."""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from ulid import ULID

from devtools.local_run import LIMITS_TABLE_NAME, TABLE_NAME
from devtools.servers import UvicornThread
from relay.app import create_app
from relay.config import Settings
from relay.dynamodb import DynamoDB
from relay.store import ChatStore
from relay.usage import BudgetExceeded, Period, UsageLedger
from tests.helpers import RecordingClient, app_client, count_items, emf_lines, last_record, new_session, stream_chat

THIRTY_TOKENS = "sim:first_token_ms=0,tokens_per_second=0,tokens=30"


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


class Clock:
    """An injected clock: epoch seconds that a test sets."""

    def __init__(self, iso: str) -> None:
        self.now = at(iso)

    def __call__(self) -> float:
        return self.now


def ledger(dynamodb: Any, clock: Clock, per_day: int = 0, per_month: int = 0) -> UsageLedger:
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME,
                       token_budget_per_day=per_day, token_budget_per_month=per_month)
    return UsageLedger(DynamoDB(lambda: dynamodb), settings, clock)


def new_user() -> str:
    return f"spender-{ULID()}"


# Periods.

def test_a_moment_falls_in_its_utc_day_and_month_which_end_at_midnight():
    period = Period.at(at("2026-03-31T23:59:30"))
    assert (period.month, period.day) == ("2026-03", "31")
    assert period.day_ends_at == period.month_ends_at == at("2026-04-01T00:00:00")


def test_february_of_a_leap_year_ends_after_its_29th():
    assert Period.at(at("2028-02-10T08:00:00")).month_ends_at == at("2028-03-01T00:00:00")
    assert Period.at(at("2027-02-10T08:00:00")).month_ends_at == at("2027-03-01T00:00:00")


# Budgets, at the ledger, with the clock injected.

def test_a_month_budget_reached_mid_month_refuses_until_the_first_of_the_next(stack, dynamodb):
    # GIVEN a month budget of 100 tokens, 110 of them spent over two days in June
    clock, user = Clock("2026-06-03T09:00:00"), new_user()
    usage = ledger(dynamodb, clock, per_month=100)
    asyncio.run(usage.add(user, 40, 20))
    clock.now = at("2026-06-10T18:30:00")
    asyncio.run(usage.check(user))  # 60 spent: still under
    asyncio.run(usage.add(user, 30, 20))
    # WHEN the user asks again mid-month THEN it is refused until 1 July, 00:00 UTC
    clock.now = at("2026-06-15T12:00:00")
    with pytest.raises(BudgetExceeded) as refused:
        asyncio.run(usage.check(user))
    assert refused.value.status == 429 and refused.value.code == "budget_exceeded"
    assert int(refused.value.headers["Retry-After"]) == at("2026-07-01T00:00:00") - clock.now
    assert "month" in refused.value.message
    # AND on the first of July it starts again
    clock.now = at("2026-07-01T00:00:01")
    asyncio.run(usage.check(user))


def test_a_day_budget_refuses_until_midnight_and_the_next_day_starts_again(stack, dynamodb):
    clock, user = Clock("2026-06-30T23:59:50"), new_user()
    usage = ledger(dynamodb, clock, per_day=100, per_month=1_000)
    asyncio.run(usage.add(user, 70, 30))
    with pytest.raises(BudgetExceeded) as refused:
        asyncio.run(usage.check(user))
    assert refused.value.headers["Retry-After"] == "10" and "day" in refused.value.message
    # WHEN the day (and here the month) rolls over THEN the day's budget is whole again
    clock.now = at("2026-07-01T00:00:05")
    asyncio.run(usage.check(user))
    spent = asyncio.run(usage.read(user))
    assert (spent.day.tokens, spent.month.tokens) == (0, 0)


def test_the_days_spending_is_part_of_the_months_and_the_day_before_is_not_the_days(stack, dynamodb):
    clock, user = Clock("2026-06-14T22:00:00"), new_user()
    usage = ledger(dynamodb, clock, per_day=100)
    asyncio.run(usage.add(user, 60, 30))
    clock.now = at("2026-06-15T08:00:00")
    asyncio.run(usage.add(user, 5, 7))
    asyncio.run(usage.check(user))  # 12 today: the 90 of yesterday do not count against today
    spent = asyncio.run(usage.read(user))
    assert spent.day.to_json() == {"inputTokens": 5, "outputTokens": 7, "requests": 1}
    assert spent.month.to_json() == {"inputTokens": 65, "outputTokens": 37, "requests": 2}


def test_with_no_budget_the_check_reads_nothing(stack, dynamodb):
    recording = RecordingClient(dynamodb)
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME)
    asyncio.run(UsageLedger(DynamoDB(lambda: recording), settings).check(new_user()))
    assert recording.calls == []


# Over HTTP, on the real stack.

@pytest.fixture(scope="module")
def budgeted(stack, dynamodb) -> Iterator[str]:
    """An app with a day's budget of 20 tokens, whose users are named by X-Test-User."""
    with app_client(dynamodb, users_by_header=True, limits_table_name=LIMITS_TABLE_NAME,
                    token_budget_per_day=20) as client:
        yield str(client.base_url)


@pytest.fixture()
def spender(budgeted) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=budgeted, timeout=30, headers={"x-test-user": new_user()}) as client:
        yield client


def test_each_turns_tokens_and_request_are_added_to_the_users_day_and_month(stack, dynamodb):
    with app_client(dynamodb, users_by_header=True, limits_table_name=LIMITS_TABLE_NAME) as relay:
        relay.headers["x-test-user"] = new_user()
        chat_session_id = new_session(relay, THIRTY_TOKENS)
        usages = [stream_chat(relay, chat_session_id, text).one("done")["usage"] for text in ("one", "two three")]
        response = relay.get("/usage")
        relay.headers["x-test-user"] = new_user()
        someone_else = relay.get("/usage").json()
    assert response.status_code == 200
    spent = response.json()
    expected = {"inputTokens": sum(u["inputTokens"] for u in usages),
                "outputTokens": sum(u["outputTokens"] for u in usages), "requests": 2}
    assert expected["outputTokens"] == 60 and expected["inputTokens"] > 0
    assert spent["day"] == spent["month"] == expected
    assert spent["limits"] == {"tokensPerDay": None, "tokensPerMonth": None, "requestsPerMinute": None,
                               "concurrentStreams": None}
    assert someone_else["day"] == {"inputTokens": 0, "outputTokens": 0, "requests": 0}


def test_a_turn_crossing_the_budget_finishes_and_the_next_is_refused_until_midnight_utc(spender, dynamodb, capsys):
    # GIVEN a user under the day's budget of 20 tokens
    chat_session_id = new_session(spender, THIRTY_TOKENS)
    # WHEN a turn spends past it THEN it still finishes
    received = stream_chat(spender, chat_session_id)
    assert len(received.tokens) == 30 and received.one("done")
    assert spender.get("/usage").json()["limits"]["tokensPerDay"] == 20
    # AND the next turn is refused before the provider is asked, writing no chat data
    before = count_items(dynamodb)
    capsys.readouterr()
    refused = spender.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "more",
                                                 "clientMessageId": f"client-{ULID()}"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded" and "day" in refused.json()["error"]["message"]
    until_midnight = Period.at(time.time()).day_ends_at - time.time()
    assert abs(int(refused.headers["retry-after"]) - until_midnight) <= 5
    assert count_items(dynamodb) == before
    # AND the refusal is counted in the metrics
    refusals = [line for line in emf_lines(capsys.readouterr().out) if "BudgetRefusals" in line]
    assert [(line["BudgetRefusals"], line["period"]) for line in refusals] == [([1.0], "day")]


def test_a_retry_of_a_turn_admitted_under_budget_still_joins_it(spender):
    chat_session_id = new_session(spender, THIRTY_TOKENS)
    body = {"chatSessionId": chat_session_id, "content": "hi", "clientMessageId": f"client-{ULID()}"}
    first = events_of(spender, body)
    # the budget is spent now, but a retry of the same request spends nothing: it replays the answer
    again = events_of(spender, body)
    assert again["start"] == first["start"] and again["done"]["messageId"] == first["done"]["messageId"]
    assert again["text"] == first["text"] and len(first["text"]) > 0


def events_of(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """A chat request's start and done events, and its text."""
    seen: dict[str, Any] = {"text": ""}
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            if sse.event == "token":
                seen["text"] += sse.json()["text"]
            else:
                seen[sse.event] = sse.json()
    return seen


def test_the_budget_check_adds_no_round_trip_before_the_provider_request(stack, dynamodb):
    # GIVEN budgets on, and DynamoDB calls recorded with their times
    recording = RecordingClient(dynamodb)
    settings = replace(Settings.from_environment(), limits_table_name=LIMITS_TABLE_NAME, token_budget_per_day=10**9)
    server = UvicornThread(create_app(settings, ChatStore(TABLE_NAME, ttl_days=1,
                                                          client_factory=lambda: recording))).start()
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            chat_session_id = new_session(client, model)
            recording.calls.clear()
            with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                                   "content": "hi"}) as source:
                names = [sse.event for sse in source.iter_sse()]
    finally:
        server.stop()
    assert names[-1] == "done"
    # THEN the session's Query and the usage's GetItem went together, and were all before the provider request
    provider_started = last_record(stack, model).started_at
    before = [(operation, started, ended) for operation, started, ended in recording.calls
              if ended < provider_started]
    assert sorted(operation for operation, _, _ in before) == ["get_item", "query"]
    (_, _, first_ended), (_, second_started, _) = before
    assert second_started < first_ended  # at the same time: one round trip, not two
    # AND the turn wrote twice: its message, then its answer with its usage
    assert [operation for operation, _, _ in recording.calls if operation not in ("update_item", "get_item",
                                                                                 "query")] == [
        "transact_write_items", "transact_write_items"]


def test_a_turn_stopped_before_the_providers_count_still_counts_its_input(stack, dynamodb):
    # GIVEN a long message whose answer streams slowly, and a provider that counts usage only at the end
    import threading

    from tests.helpers import Received, wait_for

    with app_client(dynamodb, users_by_header=True, limits_table_name=LIMITS_TABLE_NAME) as relay:
        relay.headers["x-test-user"] = new_user()
        chat_session_id = new_session(relay, "sim:first_token_ms=0,tokens_per_second=10,tokens=200")
        received = Received()

        def read() -> None:
            body = {"chatSessionId": chat_session_id, "content": "word " * 2000}
            with connect_sse(relay, "POST", "/chat/stream", json=body) as source:
                received.events.extend((sse.event, sse.json()) for sse in source.iter_sse())

        thread = threading.Thread(target=read)
        thread.start()
        try:
            wait_for(lambda: len(received.tokens) >= 2)
            # WHEN the user stops it
            message_id = received.one("start")["messageId"]
            assert relay.post(f"/sessions/{chat_session_id}/messages/{message_id}/cancel").status_code == 202
        finally:
            thread.join(30)
        assert received.one("error")["code"] == "cancelled"
        # THEN its input, which the provider was sent and bills, is counted (estimated from its characters), not 0
        spent = relay.get("/usage").json()["day"]
    assert spent["requests"] == 1 and spent["outputTokens"] == len(received.tokens)
    assert spent["inputTokens"] >= len("word " * 2000) // 4
