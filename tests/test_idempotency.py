"""Idempotent turns: a request retried with the same clientMessageId never makes a second user message or a second
provider call; it joins the running answer or replays the stored one. Claimed with a conditional transaction."""

import threading
import time

import httpx
from httpx_sse import connect_sse
from ulid import ULID

from devtools.simulated_provider import answer_tokens
from tests.helpers import Received, count_items, messages_of, new_session, provider_calls, stream_chat


def chat(client: httpx.Client, chat_session_id: str, client_message_id: str,
         received_into: Received | None = None) -> Received:
    received = received_into if received_into is not None else Received()
    body = {"chatSessionId": chat_session_id, "content": "hi", "clientMessageId": client_message_id}
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            received.events.append((sse.event, sse.json()))
    return received


def test_a_retry_after_the_answer_replays_it_without_a_second_message_or_call(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=15,fault_at=99"
    chat_session_id = new_session(client, model)
    client_message_id = f"client-{ULID()}"
    first = chat(client, chat_session_id, client_message_id)
    again = chat(client, chat_session_id, client_message_id)
    assert again.one("start") == first.one("start")
    assert "".join(again.tokens) == "".join(first.tokens) == "".join(answer_tokens(15))
    assert again.one("done")["messageId"] == first.one("done")["messageId"]
    assert [m["role"] for m in messages_of(client, chat_session_id)] == ["user", "ai"]
    assert provider_calls(stack, model) == 1


def test_a_retry_while_the_answer_streams_joins_it_with_nothing_lost_or_repeated(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=15,tokens=30,fault_at=98"
    chat_session_id = new_session(client, model)
    client_message_id = f"client-{ULID()}"
    first = Received()
    thread = threading.Thread(target=chat, args=(client, chat_session_id, client_message_id, first))
    thread.start()
    try:
        while len(first.tokens) < 3:
            thread.join(0.02)
        joined = chat(client, chat_session_id, client_message_id)
    finally:
        thread.join(15)
    assert "".join(joined.tokens) == "".join(first.tokens) == "".join(answer_tokens(30))
    assert joined.one("done")["messageId"] == first.one("start")["messageId"]
    assert len(messages_of(client, chat_session_id)) == 2
    assert provider_calls(stack, model) == 1


def test_a_client_message_id_on_someone_elses_or_no_session_writes_nothing(client, dynamodb):
    before = count_items(dynamodb)
    body = {"chatSessionId": "01HZY0000000000000000NOPE0", "content": "hi", "clientMessageId": "abc"}
    response = client.post("/chat/stream", json=body)
    assert response.status_code == 404
    assert count_items(dynamodb) == before
    bad = client.post("/chat/stream", json={**body, "clientMessageId": "no spaces allowed"})
    assert bad.status_code == 422


def test_different_client_message_ids_are_different_turns(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=2")
    chat(client, chat_session_id, "one")
    chat(client, chat_session_id, "two")
    stream_chat(client, chat_session_id)  # and none at all
    assert [m["role"] for m in messages_of(client, chat_session_id)] == ["user", "ai"] * 3


def test_the_same_client_message_id_with_other_content_is_refused_with_409_and_replays_nothing(client, dynamodb):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    chat(client, chat_session_id, "reused")
    before = count_items(dynamodb)
    body = {"chatSessionId": chat_session_id, "content": "something else", "clientMessageId": "reused"}
    response = client.post("/chat/stream", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_message_conflict"
    assert count_items(dynamodb) == before


def test_a_stale_claim_whose_message_was_never_stored_is_taken_over_by_the_next_request(client, dynamodb, stack):
    # GIVEN a claim left 60 s ago by a run that died before it stored the message
    from devtools.local_run import TABLE_NAME

    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault_at=98"  # its own: calls are counted by model
    chat_session_id = new_session(client, model)
    dynamodb.put_item(TableName=TABLE_NAME, Item={
        "PK": {"S": f"SESSION#{chat_session_id}"}, "SK": {"S": "CLIENT#orphan"},
        "userMessageId": {"S": str(ULID())}, "messageId": {"S": str(ULID())},
        "claimedAt": {"N": str(int(time.time()) - 60)}})
    # WHEN the client sends the request again THEN it is a turn of its own, answered and stored at once
    started = time.monotonic()
    received = chat(client, chat_session_id, "orphan")
    assert time.monotonic() - started < 10
    assert received.one("done")
    assert [m["role"] for m in messages_of(client, chat_session_id)] == ["user", "ai"]
    assert provider_calls(stack, model) == 1


def test_a_retry_hears_start_only_once_the_message_it_joins_is_stored(client, dynamodb):
    # GIVEN a claim just taken by a first attempt whose message is not stored yet (it may never be: its run can
    # die, or its request be refused, between the claim and the write)
    import asyncio

    from devtools.local_run import TABLE_NAME
    from relay.records import StoredMessage
    from relay.store import ChatStore

    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=4")
    user_id, answer_id = str(ULID()), str(ULID())
    dynamodb.put_item(TableName=TABLE_NAME, Item={
        "PK": {"S": f"SESSION#{chat_session_id}"}, "SK": {"S": "CLIENT#in-flight"},
        "userMessageId": {"S": user_id}, "messageId": {"S": answer_id},
        "claimedAt": {"N": str(int(time.time()))}})
    # WHEN the client retries, and only a while later the first attempt's message and answer are stored
    events: list[tuple[str, dict]] = []
    answering = threading.Event()

    def retry() -> None:
        body = {"chatSessionId": chat_session_id, "content": "hi", "clientMessageId": "in-flight"}
        with connect_sse(client, "POST", "/chat/stream", json=body) as source:
            answering.set()
            events.extend((sse.event, sse.json()) for sse in source.iter_sse())

    thread = threading.Thread(target=retry)
    thread.start()
    assert answering.wait(10)
    time.sleep(1)  # time enough for a start the retry should not send yet; no assertion rests on it
    events.append(("stored", {}))
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)
    created_at = "2026-12-01T00:00:00.000Z"
    asyncio.run(store.put_messages(chat_session_id, StoredMessage(user_id, "user", "hi", "complete", created_at),
                                   StoredMessage(answer_id, "ai", "the answer", "complete", created_at)))
    thread.join(30)
    # THEN the retry announced the message only once it was there, and then followed it to the end
    assert [name for name, _ in events] == ["stored", "start", "token", "done"]
    assert events[1][1] == {"userMessageId": user_id, "messageId": answer_id}
    assert events[2][1]["text"] == "the answer"
