"""Every wait has an end: the first token, the silence between tokens, and Lambda's deadline, over real loopback
HTTP. Each ends in a stored terminal state holding the text so far, and a clear event for the client."""

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from ulid import ULID

from devtools.local_run import TABLE_NAME
from devtools.simulated_provider import answer_tokens, reasoning_tokens
from relay.records import StoredMessage
from relay.store import ChatStore
from tests.helpers import app_client, emf_lines, messages_of, new_session, stream_chat


@pytest.fixture(scope="module")
def impatient(stack, dynamodb) -> Iterator[httpx.Client]:
    with app_client(dynamodb, first_token_timeout_seconds=0.4, idle_timeout_seconds=0.4,
                    deadline_margin_seconds=0.5) as client:
        yield client


def test_no_first_token_in_time_is_a_provider_timeout(impatient, capsys):
    model = "sim:first_token_ms=3000,tokens=5"
    chat_session_id = new_session(impatient, model)
    started = time.monotonic()
    received = stream_chat(impatient, chat_session_id)
    assert time.monotonic() - started < 2.5
    error = received.one("error")
    assert error["code"] == "provider_timeout" and "0.4 s" in error["message"]
    _, ai = messages_of(impatient, chat_session_id)
    assert (ai["status"], ai["content"]) == ("error", "")
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("errorCode") == "provider_timeout"]
    assert blob["StreamErrors"] == [1.0]


def test_silence_between_tokens_is_a_provider_timeout_with_the_text_so_far(impatient):
    chat_session_id = new_session(impatient, "sim:first_token_ms=0,tokens_per_second=1,tokens=5")
    received = stream_chat(impatient, chat_session_id)
    assert received.tokens == answer_tokens(1)
    assert received.one("error")["code"] == "provider_timeout"
    _, ai = messages_of(impatient, chat_session_id)
    assert (ai["status"], ai["content"]) == ("error", answer_tokens(1)[0])


def test_lambdas_deadline_stops_the_turn_in_time_to_store_it_as_interrupted(impatient):
    chat_session_id = new_session(impatient, "sim:first_token_ms=0,tokens_per_second=20,tokens=200")
    deadline = int(time.time() * 1000) + 1500  # the margin is 0.5 s: the turn stops after about 1 s
    headers = {"x-amzn-lambda-context": json.dumps({"request_id": "r-1", "deadline": deadline})}
    received = stream_chat(impatient, chat_session_id, headers=headers)
    assert time.time() * 1000 < deadline  # told, and stored, before Lambda would have cut it off
    assert received.one("error")["code"] == "deadline"
    assert len(received.tokens) >= 5
    _, ai = messages_of(impatient, chat_session_id)
    assert ai["status"] == "interrupted"
    assert ai["content"] == "".join(received.tokens)


def test_a_message_left_streaming_past_its_deadline_reads_as_interrupted(stack, client, dynamodb):
    import asyncio

    chat_session_id = new_session(client, "sim")
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)
    now = int(time.time() * 1000)
    stale = StoredMessage(str(ULID()), "ai", "half an ans", "streaming", "2026-01-01T00:00:00.000Z",
                          deadline_at=now - 1)
    live = StoredMessage(str(ULID.from_int(int(ULID.from_str(stale.message_id)) + 1)), "ai", "still going",
                         "streaming", "2026-01-01T00:00:00.000Z", deadline_at=now + 60_000)
    asyncio.run(store.put_messages(chat_session_id, stale, live))
    statuses = [(m["content"], m["status"]) for m in messages_of(client, chat_session_id)]
    assert statuses == [("half an ans", "interrupted"), ("still going", "streaming")]


def test_a_model_that_reasons_longer_than_the_first_token_timeout_is_alive_and_answers(stack, dynamodb):
    # GIVEN an app that waits 0.25 s for a provider's first delta and 2 s between deltas, and a model that reasons
    # for over a second, its reasoning deltas 0.4 s apart, before its first answer token
    with app_client(dynamodb, first_token_timeout_seconds=0.25, idle_timeout_seconds=2) as client:
        chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=2.5,tokens=2,reasoning=4")
        # WHEN it answers
        received = stream_chat(client, chat_session_id)
        _, ai = messages_of(client, chat_session_id)
    # THEN its reasoning was the provider being alive: the first-token timeout ended with the first reasoning
    # delta, and the waits after it were the idle timeout's, so the answer came
    done = received.one("done")
    assert done["ttftMs"] >= 1600 and received.tokens == answer_tokens(2)  # four 0.4 s gaps before the answer
    assert received.reasoning == reasoning_tokens(4)
    assert ai["status"] == "complete"


def test_silence_between_reasoning_deltas_is_a_provider_timeout_with_the_reasoning_so_far(impatient):
    chat_session_id = new_session(impatient, "sim:first_token_ms=0,tokens_per_second=1,tokens=3,reasoning=5")
    received = stream_chat(impatient, chat_session_id)
    assert received.reasoning == reasoning_tokens(1) and received.tokens == []
    assert received.one("error")["code"] == "provider_timeout"
    _, ai = messages_of(impatient, chat_session_id)
    assert (ai["status"], ai["content"], ai["reasoning"]) == ("error", "", reasoning_tokens(1)[0])
