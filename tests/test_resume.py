"""Resume: every token event carries its character offset as the SSE id, and a client that reconnects from an
offset gets the rest: from the store, then live while the answer is still being generated, then the end."""

import httpx
import pytest
from botocore.exceptions import ClientError
from httpx_sse import connect_sse

from devtools.local_run import TABLE_NAME
from devtools.simulated_provider import answer_tokens, reasoning_tokens
from tests.helpers import Received, disconnect_after_three_tokens, messages_of, new_session, stream_chat


def resume(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> Received:
    received = Received()
    with connect_sse(client, "GET", path, headers=headers or {}) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            received.add(sse)
    return received


def test_token_ids_are_the_character_offset_after_each_token(client):
    # café, naïve and 🙂 among the tokens: offsets count code points (len of a Python str), not bytes or UTF-16 units
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=12,words=tricky")
    ids, offset = [], 0
    with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as s:
        for sse in s.iter_sse():
            if sse.event == "token":
                offset += len(sse.json()["text"])
                ids.append((sse.id, offset))
    assert ids and all(event_id == str(expected) for event_id, expected in ids)


def test_a_finished_answer_replays_from_the_offset_at_once(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=20,words=tricky")
    done = stream_chat(client, chat_session_id).one("done")
    full = "".join(answer_tokens(20, "tricky"))  # non-ASCII before offset 10 and after it
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


def test_a_reasoning_events_id_is_both_offsets_and_so_is_a_tokens_after_it(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=4,reasoning=5")
    received = stream_chat(client, chat_session_id)
    reasoning_ids = [i for (name, _), i in zip(received.events, received.ids, strict=True) if name == "reasoning"]
    token_ids = [i for (name, _), i in zip(received.events, received.ids, strict=True) if name == "token"]
    assert reasoning_ids == [f"0:{len(''.join(reasoning_tokens(n)))}" for n in range(1, 6)]
    thought = len("".join(reasoning_tokens(5)))
    assert token_ids == [f"{len(''.join(answer_tokens(n)))}:{thought}" for n in range(1, 5)]  # parseInt: the text's


def test_a_finished_answer_resumes_its_reasoning_and_its_text_each_from_its_own_offset(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=8,reasoning=10")
    message_id = stream_chat(client, chat_session_id).one("done")["messageId"]
    path = f"/sessions/{chat_session_id}/messages/{message_id}/stream"
    thought, text = "".join(reasoning_tokens(10)), "".join(answer_tokens(8))

    # a reasoning event's id: the rest of the reasoning, then the whole text
    from_reasoning = resume(client, path, {"Last-Event-ID": "0:7"})
    assert ("".join(from_reasoning.reasoning), "".join(from_reasoning.tokens)) == (thought[7:], text)
    assert [name for name, _ in from_reasoning.events] == ["reasoning", "token", "done"]
    assert from_reasoning.ids[0] == f"0:{len(thought)}"  # the ids go on from where the client was
    # the same by query
    by_query = resume(client, f"{path}?offset=0&reasoningOffset=7")
    assert by_query.events == from_reasoning.events
    # a token's id: the text from there, and no reasoning (the client has had all there was when the token came)
    from_token = resume(client, path, {"Last-Event-ID": f"5:{len(thought)}"})
    assert (from_token.reasoning, "".join(from_token.tokens)) == ([], text[5:])
    # a plain text offset says no reasoning was seen: all of it, then the text from there
    from_offset = resume(client, path, {"Last-Event-ID": "5"})
    assert ("".join(from_offset.reasoning), "".join(from_offset.tokens)) == (thought, text[5:])
    # from the start: everything
    from_start = resume(client, path)
    assert ("".join(from_start.reasoning), "".join(from_start.tokens)) == (thought, text)
    # beyond what is stored, or not an id at all
    assert client.get(path, headers={"Last-Event-ID": f"0:{len(thought) + 1}"}).status_code == 422
    for header in ("0:x", "1:2:3", ":3", "0: 3"):
        assert client.get(path, headers={"Last-Event-ID": header}).status_code == 422, header
    for value in ("-1", "3\n", "\u0663"):  # "\u0663": an Arabic-Indic 3, which is no ASCII digit
        assert client.get(path, params={"reasoningOffset": value}).status_code == 422, value


def test_reconnecting_mid_reasoning_gets_the_rest_of_it_live_then_the_answer(client):
    # GIVEN a client that drops its connection after three reasoning deltas of a slow answer
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=15,tokens=10,reasoning=20")
    seen, last_id = [], None
    with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as s:
        for sse in s.iter_sse():
            if sse.event == "reasoning":
                seen.append(sse.json()["text"])
                last_id = sse.id
            if len(seen) == 3:
                break
    _, ai = messages_of(client, chat_session_id)
    # WHEN it reconnects with the last id it saw, as EventSource does
    resumed = resume(client, f"/sessions/{chat_session_id}/messages/{ai['messageId']}/stream",
                     {"Last-Event-ID": str(last_id)})
    # THEN it gets the rest of the reasoning and the whole answer, nothing lost or repeated
    assert "".join(seen) + "".join(resumed.reasoning) == "".join(reasoning_tokens(20))
    assert "".join(resumed.tokens) == "".join(answer_tokens(10))
    assert resumed.one("done")["finishReason"] == "stop"
