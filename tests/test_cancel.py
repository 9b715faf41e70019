"""Checkpoints and Stop: the text so far is stored about once a second while streaming, and a cancel request
stops the generating run at its next checkpoint, over real loopback HTTP."""

import time

from devtools.simulated_provider import answer_tokens
from tests.helpers import last_record, messages_of, new_session, stream_in_background, wait_for


def test_the_text_so_far_is_checkpointed_while_streaming(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=10,tokens=40")
    _, thread = stream_in_background(client, chat_session_id)
    try:
        time.sleep(2.2)
        _, ai = messages_of(client, chat_session_id)
        assert ai["status"] == "streaming"
        assert len(ai["content"]) > 0
        assert "".join(answer_tokens(40)).startswith(ai["content"])
    finally:
        thread.join(15)
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("complete", "".join(answer_tokens(40)))


def test_stop_ends_the_answer_at_the_next_checkpoint_as_interrupted_with_the_text_so_far(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=20,tokens=400"
    chat_session_id = new_session(client, model)
    received, thread = stream_in_background(client, chat_session_id)
    try:
        wait_for(lambda: len(received.tokens) >= 3)
        message_id = received.one("start")["messageId"]
        asked = time.monotonic()
        response = client.post(f"/sessions/{chat_session_id}/messages/{message_id}/cancel")
        assert response.status_code == 202 and response.json() == {"messageId": message_id, "status": "cancelling"}
    finally:
        thread.join(15)
    assert time.monotonic() - asked < 3  # noticed at the next checkpoint, about a second later
    assert received.one("error")["code"] == "cancelled"
    _, ai = messages_of(client, chat_session_id)
    assert ai["status"] == "interrupted"
    assert ai["content"] == "".join(received.tokens)
    assert not last_record(stack, model).finished  # the upstream request was closed


def test_stopping_a_finished_or_unknown_message_is_refused(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"})
    _, ai = messages_of(client, chat_session_id)
    finished = client.post(f"/sessions/{chat_session_id}/messages/{ai['messageId']}/cancel")
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "not_streaming"
    unknown = client.post(f"/sessions/01HZY0000000000000000NOPE0/messages/{ai['messageId']}/cancel")
    assert unknown.status_code == 404
    _, ai_after = messages_of(client, chat_session_id)
    assert ai_after == ai  # nothing changed


def test_an_answer_is_pending_until_its_first_token_then_streaming_then_complete(client):
    chat_session_id = new_session(client, "sim:first_token_ms=1500,tokens_per_second=10,tokens=25")
    _, thread = stream_in_background(client, chat_session_id)
    try:
        wait_for(lambda: len(messages_of(client, chat_session_id)) == 2)
        user, ai = messages_of(client, chat_session_id)
        assert (user["status"], ai["status"], ai["content"]) == ("complete", "pending", "")  # stored before any token
        wait_for(lambda: messages_of(client, chat_session_id)[1]["status"] == "streaming")
    finally:
        thread.join(15)
    assert messages_of(client, chat_session_id)[1]["status"] == "complete"
