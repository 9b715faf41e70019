"""Regenerate over real loopback HTTP: ``{"chatSessionId", "regenerate": true}`` answers the last user message
again, keeps the answer it replaces (``metadata.supersededBy``) out of what the provider is sent, and is a turn like
any other for idempotency, resume and cancel."""

import threading

import httpx
import pytest
from httpx_sse import connect_sse
from ulid import ULID

from devtools.simulated_provider import answer_tokens
from tests.helpers import (
    Received,
    app_client,
    count_items,
    last_record,
    messages_of,
    new_session,
    provider_calls,
    stream_chat,
    wait_for,
)

FAST = "sim:first_token_ms=0,tokens_per_second=0,tokens=6"


def regenerate(client: httpx.Client, chat_session_id: str, client_message_id: str | None = None,
               received: Received | None = None) -> Received:
    received = received if received is not None else Received()
    body = {"chatSessionId": chat_session_id, "regenerate": True,
            **({"clientMessageId": client_message_id} if client_message_id else {})}
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            received.events.append((sse.event, sse.json()))
    return received


def test_regenerate_answers_the_last_message_again_and_keeps_the_answer_it_replaces(client, stack):
    # GIVEN a conversation of two turns
    chat_session_id = new_session(client, FAST)
    stream_chat(client, chat_session_id, "first question")
    first = stream_chat(client, chat_session_id, "second question")
    # WHEN its last answer is regenerated
    again = regenerate(client, chat_session_id)
    # THEN a new answer streams for the same user message
    assert again.one("start")["userMessageId"] == first.one("start")["userMessageId"]
    assert again.one("start")["messageId"] != first.one("start")["messageId"]
    assert "".join(again.tokens) == "".join(answer_tokens(6)) and again.one("done")
    # AND the provider was sent the conversation up to that message, without the answer it replaces
    sent = [(message["role"], message["content"]) for message in last_record(stack, FAST).messages
            if message["role"] != "system"]
    assert sent == [("user", "first question"), ("assistant", "".join(answer_tokens(6))),
                    ("user", "second question")]
    # AND the history keeps both answers, the old one marked as replaced by the new one
    messages = messages_of(client, chat_session_id)
    assert [m["role"] for m in messages] == ["user", "ai", "user", "ai", "ai"]
    old, new = messages[3], messages[4]
    assert old["messageId"] == first.one("start")["messageId"] and old["status"] == "complete"
    assert old["metadata"]["supersededBy"] == new["messageId"] == again.one("start")["messageId"]
    assert "supersededBy" not in new["metadata"]


def test_the_next_turn_sends_the_regenerated_answer_only(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4"
    chat_session_id = new_session(client, model)
    stream_chat(client, chat_session_id, "question")
    regenerate(client, chat_session_id)
    regenerate(client, chat_session_id)
    stream_chat(client, chat_session_id, "follow-up")
    sent = [message["role"] for message in last_record(stack, model).messages if message["role"] != "system"]
    assert sent == ["user", "assistant", "user"]
    assert [m["metadata"].get("supersededBy") is None for m in messages_of(client, chat_session_id)] == [
        True, False, False, True, True, True]


def test_a_regenerate_retried_with_its_client_message_id_joins_it_without_a_second_call(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=15,tokens=20,fault_at=97"
    chat_session_id = new_session(client, model)
    stream_chat(client, chat_session_id, "question")
    client_message_id = f"client-{ULID()}"
    first = Received()
    thread = threading.Thread(target=regenerate, args=(client, chat_session_id, client_message_id, first))
    thread.start()
    try:
        wait_for(lambda: len(first.tokens) >= 3)
        joined = regenerate(client, chat_session_id, client_message_id)
    finally:
        thread.join(15)
    assert joined.one("start") == first.one("start")  # the same user message and answer ids
    assert "".join(joined.tokens) == "".join(first.tokens) == "".join(answer_tokens(20))
    assert provider_calls(stack, model) == 2  # the first answer and one regenerate
    assert len(messages_of(client, chat_session_id)) == 3
    # AND the same id for a new message is a conflict, not a replay
    body = {"chatSessionId": chat_session_id, "content": "question", "clientMessageId": client_message_id}
    assert client.post("/chat/stream", json=body).status_code == 409


def test_a_regenerated_answer_resumes_from_an_offset_and_stops_on_cancel(client, stack):
    # GIVEN a slow regenerate streaming
    model = "sim:first_token_ms=0,tokens_per_second=15,tokens=400"
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    stream_chat(client, chat_session_id, "question")
    client.patch(f"/sessions/{chat_session_id}", json={"model": model})
    received = Received()
    thread = threading.Thread(target=regenerate, args=(client, chat_session_id, None, received))
    thread.start()
    try:
        wait_for(lambda: len(received.tokens) >= 5)
        message_id = received.one("start")["messageId"]
        # WHEN another client follows it from an offset, and then it is cancelled
        followed = Received()

        def follow_it() -> None:
            path = f"/sessions/{chat_session_id}/messages/{message_id}/stream?offset=3"
            with connect_sse(client, "GET", path) as source:
                for sse in source.iter_sse():
                    followed.events.append((sse.event, sse.json()))

        follow = threading.Thread(target=follow_it)
        follow.start()
        wait_for(lambda: len(followed.tokens) >= 2)
        cancelled = client.post(f"/sessions/{chat_session_id}/messages/{message_id}/cancel")
        assert cancelled.status_code == 202
    finally:
        thread.join(15)
        follow.join(15)
    # THEN both streams end cancelled, the follower's text the original's from offset 3
    assert received.one("error")["code"] == "cancelled"
    assert followed.events[-1] == ("error", received.one("error"))
    whole = "".join(received.tokens)
    assert "".join(followed.tokens) == whole[3:]
    # AND the regenerated answer is stored as interrupted, after the answer it replaced
    *_, old, new = messages_of(client, chat_session_id)
    assert (new["messageId"], new["status"], new["content"]) == (message_id, "interrupted", whole)
    assert old["metadata"]["supersededBy"] == message_id and old["status"] == "complete"


def test_regenerating_while_the_last_answer_streams_is_a_409_that_writes_nothing(client, dynamodb):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=10,tokens=30")
    received = Received()

    def chat() -> None:
        with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                               "content": "hi"}) as source:
            received.events.extend((sse.event, sse.json()) for sse in source.iter_sse())

    thread = threading.Thread(target=chat)
    thread.start()
    try:
        wait_for(lambda: len(messages_of(client, chat_session_id)) == 2)
        before = count_items(dynamodb)
        refused = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "regenerate": True,
                                                    "clientMessageId": "while-streaming"})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "answer_in_progress"
        assert count_items(dynamodb) == before
    finally:
        thread.join(15)


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"regenerate": True}, 409, "nothing_to_regenerate"),
    ({"regenerate": True, "content": "hi"}, 422, "validation_error"),
    ({"regenerate": "yes"}, 422, "validation_error"),
    ({"regenerate": 1, "content": "hi"}, 422, "validation_error"),
    ({"regenerate": False}, 422, "validation_error"),  # then it is an ordinary message, which needs content
])
def test_a_regenerate_that_cannot_be_is_refused_and_writes_nothing(client, dynamodb, body, status, code):
    chat_session_id = new_session(client, FAST)
    before = count_items(dynamodb)
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, **body})
    assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    assert count_items(dynamodb) == before


def test_two_regenerates_at_once_replace_the_answer_once(client, stack):
    # GIVEN an answer, and two regenerates sent together (two tabs)
    model = "sim:first_token_ms=300,tokens_per_second=0,tokens=3"
    chat_session_id = new_session(client, model)
    stream_chat(client, chat_session_id, "question")
    outcomes: list[tuple[int, str]] = []

    def send() -> None:
        response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "regenerate": True})
        outcomes.append((response.status_code, response.text))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    # THEN one answered; the other was refused, before streaming or with a terminal event
    assert len(outcomes) == 2
    for status, text in outcomes:
        refused = "answer_in_progress" in text  # as a 409, or as the stream's error once the other replaced it
        assert (status == 409 and refused) or (status == 200 and (refused or "event: done" in text)), (status, text)
    assert sum("event: done" in text for _, text in outcomes) == 1
    # AND the history has one chain of replacements: no answer replaced twice, one current answer
    answers = [m for m in messages_of(client, chat_session_id) if m["role"] == "ai"]
    assert len(answers) == 2
    old, new = answers
    assert old["metadata"]["supersededBy"] == new["messageId"] and new["status"] == "complete"


def test_answers_a_regenerate_replaced_do_not_push_the_conversation_out_of_the_history(stack, dynamodb):
    # GIVEN a relay that reads 4 messages of history, and a conversation of two turns whose last answer was
    # regenerated 4 times (the replaced answers are items of the session too)
    with app_client(dynamodb, history_max_messages=4) as client:
        chat_session_id = new_session(client, FAST)
        stream_chat(client, chat_session_id, "first question")
        stream_chat(client, chat_session_id, "second question")
        for _ in range(4):
            assert regenerate(client, chat_session_id).one("done")
        # WHEN it is regenerated once more THEN it answers the last question, with the conversation before it
        assert regenerate(client, chat_session_id).one("done")
        answer = "".join(answer_tokens(6))
        sent = [(m["role"], m["content"]) for m in last_record(stack, FAST).messages if m["role"] != "system"]
        assert sent == [("user", "first question"), ("assistant", answer), ("user", "second question")]
        # AND the next turn is sent the whole conversation, with the current answer only
        stream_chat(client, chat_session_id, "third question")
        sent = [(m["role"], m["content"]) for m in last_record(stack, FAST).messages if m["role"] != "system"]
        assert sent == [("user", "first question"), ("assistant", answer), ("user", "second question"),
                        ("assistant", answer), ("user", "third question")]
