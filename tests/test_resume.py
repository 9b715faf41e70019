"""Resume: every token event carries its character offset as the SSE id, and a client that reconnects from an
offset gets the rest: from the store, then live while the answer is still being generated, then the end."""

import httpx
import pytest
from botocore.exceptions import ClientError
from httpx_sse import connect_sse

from devtools.local_run import TABLE_NAME
from devtools.simulated_provider import answer_tokens
from tests.conftest import new_session
from tests.test_turn import Received, disconnect_after_three_tokens, messages_of, stream_chat


def resume(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> Received:
    received = Received()
    with connect_sse(client, "GET", path, headers=headers or {}) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            received.events.append((sse.event, sse.json()))
    return received


def test_token_ids_are_the_character_offset_after_each_token(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=12")
    ids, offset = [], 0
    with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as s:
        for sse in s.iter_sse():
            if sse.event == "token":
                offset += len(sse.json()["text"])
                ids.append((sse.id, offset))
    assert ids and all(event_id == str(expected) for event_id, expected in ids)


def test_a_finished_answer_replays_from_the_offset_at_once(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=20")
    done = stream_chat(client, chat_session_id).one("done")
    full = "".join(answer_tokens(20))
    resumed = resume(client, f"/sessions/{chat_session_id}/messages/{done['messageId']}/stream",
                     {"Last-Event-ID": "10"})
    assert "".join(resumed.tokens) == full[10:]
    assert resumed.one("done")["messageId"] == done["messageId"]
    assert resumed.one("done")["usage"] == done["usage"]
    by_query = resume(client, f"/sessions/{chat_session_id}/messages/{done['messageId']}/stream?offset=0")
    assert "".join(by_query.tokens) == full


def test_reconnecting_mid_answer_gets_the_rest_live_with_nothing_lost_or_repeated(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=15,tokens=45")
    seen = "".join(disconnect_after_three_tokens(client, chat_session_id))
    _, ai = messages_of(client, chat_session_id)
    assert ai["status"] == "streaming"  # the run goes on without the client
    resumed = resume(client, f"/sessions/{chat_session_id}/messages/{ai['messageId']}/stream",
                     {"Last-Event-ID": str(len(seen))})
    assert seen + "".join(resumed.tokens) == "".join(answer_tokens(45))
    assert len(resumed.tokens) >= 2  # it arrived in pieces, as the run checkpointed
    assert resumed.one("done")["finishReason"] == "stop"


def test_resume_refuses_what_it_cannot_serve(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    stream_chat(client, chat_session_id)
    user, ai = messages_of(client, chat_session_id)
    base = f"/sessions/{chat_session_id}/messages"
    assert client.get(f"{base}/{ai['messageId']}/stream?offset=999").status_code == 422
    assert client.get(f"{base}/{ai['messageId']}/stream?offset=-1").status_code == 422
    assert client.get(f"{base}/{user['messageId']}/stream").status_code == 404
    assert client.get(f"/sessions/01HZY0000000000000000NOPE0/messages/{ai['messageId']}/stream").status_code == 404


@pytest.fixture(scope="module")
def finished_answer(stack) -> str:
    """The resume path of one finished answer."""
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
        stream_chat(client, chat_session_id)
        _, ai = messages_of(client, chat_session_id)
    return f"/sessions/{chat_session_id}/messages/{ai['messageId']}/stream"


@pytest.mark.parametrize(("query", "last_event_id"), [
    ("?offset=%C2%B2", None),  # "²": str.isdigit() says yes, int() raises
    ("?offset=%D9%A1%D9%A2", None),  # "١٢": Arabic-Indic digits, which int() would read as 12
    ("?offset=%EF%BC%91", None),  # "１", fullwidth
    ("?offset=+1", None),
    ("?offset=1_0", None),
    ("?offset=%201", None),
    ("?offset=" + "9" * 10, None),
    ("?offset=" + "9" * 5000, None),  # past int()'s 4,300-digit limit
    ("", b"\xb2"),  # "²" in Latin-1, as a header byte
    ("", b"\xb9\xb2"),
    ("", b"-1"),
])
def test_an_offset_of_anything_but_ascii_digits_is_a_422(client, finished_answer, query, last_event_id):
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    response = client.get(f"{finished_answer}{query}", headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_an_answer_longer_than_one_item_holds_is_stored_and_replayed_whole(client, dynamodb):
    # GIVEN that DynamoDB (moto, like the real one) refuses an item over 400 KB
    with pytest.raises(ClientError):
        dynamodb.put_item(TableName=TABLE_NAME, Item={"PK": {"S": "x"}, "SK": {"S": "y"}, "c": {"S": "é" * 250_000}})
    # WHEN an answer of about 360,000 characters streams through
    tokens = 70_000
    chat_session_id = new_session(client, f"sim:first_token_ms=0,tokens_per_second=0,tokens={tokens}")
    received = stream_chat(client, chat_session_id)
    full = "".join(answer_tokens(tokens))
    assert len(full) > 300_000 and "".join(received.tokens) == full
    # THEN it is stored across items and read back whole, from the listing and from a resume
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("complete", full)
    resumed = resume(client, f"/sessions/{chat_session_id}/messages/{ai['messageId']}/stream?offset=250000")
    assert "".join(resumed.tokens) == full[250_000:]
