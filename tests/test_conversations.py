"""A user's conversations over real loopback HTTP and moto's DynamoDB: listed newest activity first a page at a
time, renamed and reconfigured, deleted down to the last item (counted by a scan), even while an answer streams
into them; every other user's answer 404."""

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ulid import ULID

from devtools.local_run import TABLE_NAME
from tests.helpers import app_client, count_items, emf_lines, new_session, stream_chat, stream_in_background, wait_for

FAST = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
SLOW = "sim:first_token_ms=0,tokens_per_second=10,tokens=200"


@pytest.fixture(scope="module")
def relay(stack, dynamodb) -> Iterator[httpx.Client]:
    """An app of the shared stack's settings whose users are named by X-Test-User, and where OpenAI (simulated)
    offers one model only."""
    from relay.config import Settings

    models = {**Settings.from_environment().models, "openai": ["gpt-4o-mini"]}
    with app_client(dynamodb, users_by_header=True, models=models) as client:
        yield client


def as_user(relay: httpx.Client, name: str = "user") -> httpx.Client:
    """A client of ``relay`` for a user of its own (a fresh id each time, so no other test's sessions count)."""
    return httpx.Client(base_url=relay.base_url, timeout=30, headers={"x-test-user": f"{name}-{ULID()}"})


def items_of(dynamodb, chat_session_id: str) -> list[dict[str, Any]]:
    """Every item of the session's partition, by a scan (what a Query could miss, a scan does not)."""
    items, scan = [], {"TableName": TABLE_NAME, "FilterExpression": "PK = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{chat_session_id}"}}}
    while True:
        page = dynamodb.scan(**scan)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def every_page(user: httpx.Client, limit: int) -> list[list[dict[str, Any]]]:
    pages, params = [], {"limit": limit}
    while True:
        response = user.get("/sessions", params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json()["sessions"])
        if "nextCursor" not in response.json():
            return pages
        params["cursor"] = response.json()["nextCursor"]


# Listing.

def test_a_users_conversations_list_most_recently_active_first_a_page_at_a_time(relay):
    with as_user(relay) as user:
        # GIVEN five sessions, made one after the other, and a turn in the second one made
        made = []
        for index in range(5):
            made.append(new_session(user, FAST, title=f"chat {index}"))
            time.sleep(0.002)  # distinct creation times, to the millisecond
        stream_chat(user, made[1], "Hello")
        # WHEN they are listed two at a time
        pages = every_page(user, limit=2)
    # THEN every one comes once, the one just active first, then the newest
    listed = [session for page in pages for session in page]
    assert all(len(page) <= 2 for page in pages) and len(pages) >= 3
    assert [session["chatSessionId"] for session in listed] == [made[1], made[4], made[3], made[2], made[0]]
    active = listed[0]
    assert active["title"] == "chat 1" and active["provider"] == "simulated" and active["model"] == FAST
    assert active["messageCount"] == 2 and active["updatedAt"] > active["createdAt"]
    assert "messageCount" not in listed[1] and listed[1]["updatedAt"] == listed[1]["createdAt"]


def test_a_user_with_no_conversations_gets_an_empty_list(relay):
    with as_user(relay) as user:
        assert user.get("/sessions").json() == {"sessions": []}


def test_another_users_sessions_are_never_listed_changed_or_deleted(relay, dynamodb):
    with as_user(relay, "alice") as alice, as_user(relay, "bob") as bob:
        # GIVEN alice's session
        chat_session_id = new_session(alice, FAST, title="alice's")
        stream_chat(alice, chat_session_id)
        before = items_of(dynamodb, chat_session_id)
        # WHEN bob lists, renames or deletes it THEN it is not there for him
        assert bob.get("/sessions").json() == {"sessions": []}
        renamed = bob.patch(f"/sessions/{chat_session_id}", json={"title": "bob's now"})
        assert renamed.status_code == 404 and renamed.json()["error"]["code"] == "session_not_found"
        assert bob.delete(f"/sessions/{chat_session_id}").status_code == 404
        assert bob.delete("/sessions").status_code == 204  # all of his: none
        assert bob.get(f"/sessions/{chat_session_id}/messages").status_code == 404
        # AND nothing of alice's changed
        assert sorted(map(str, items_of(dynamodb, chat_session_id))) == sorted(map(str, before))
        [listed] = alice.get("/sessions").json()["sessions"]
        assert listed["title"] == "alice's"


def cursor_of(fields: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "abc", "%%%", "A" * 5000, cursor_of([]), cursor_of({"o": "x"}), cursor_of("text"),
    cursor_of({"o": "x", "u": "2026-01-01T00:00:00.000Z", "s": "not-an-id"}),
    cursor_of({"o": "x", "u": 5, "s": "01HZY00000000000000000DEM0"}),
    cursor_of({"o": "x", "u": "yesterday", "s": "01HZY00000000000000000DEM0"}),
    cursor_of({"o": "x", "u": "2026-01-01T00:00:00.000Z", "s": "01HZY00000000000000000DEM0", "extra": 1}),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(), "[" * 3000,
])
def test_a_junk_cursor_is_a_422(relay, cursor):
    with as_user(relay) as user:
        new_session(user, FAST)
        response = user.get("/sessions", params={"cursor": cursor})
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


def test_another_users_cursor_is_refused_and_lists_nothing_of_theirs(relay):
    with as_user(relay, "alice") as alice, as_user(relay, "mallory") as mallory:
        # GIVEN a cursor into alice's list
        for _ in range(3):
            new_session(alice, FAST)
        cursor = alice.get("/sessions", params={"limit": 1}).json()["nextCursor"]
        new_session(mallory, FAST)
        # WHEN mallory pages with it THEN it is refused
        response = mallory.get("/sessions", params={"cursor": cursor})
        assert response.status_code == 422 and "another user" in response.json()["error"]["message"]
        # AND one remade for mallory's id starts in mallory's own list, never alice's
        fields = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        forged = cursor_of({**fields, "o": mallory.headers["x-test-user"]})
        listed = mallory.get("/sessions", params={"cursor": forged}).json()["sessions"]
        assert all(session["chatSessionId"] not in alice.get("/sessions").text for session in listed)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "²", "1.5", "", "9" * 30])
def test_a_limit_outside_1_to_100_is_a_422(relay, limit):
    with as_user(relay) as user:
        response = user.get("/sessions", params={"limit": limit})
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.text(max_size=300) | st.binary(max_size=200).map(lambda b: base64.urlsafe_b64encode(b).decode()),
       limit=st.none() | st.text(max_size=5))
def test_no_cursor_or_limit_answers_a_5xx(relay, cursor, limit):
    with as_user(relay) as user:
        params = {"cursor": cursor, **({"limit": limit} if limit is not None else {})}
        response = user.get("/sessions", params=params)
    assert response.status_code in (200, 422), response.text


# Changing a session.

def test_patch_changes_what_it_names_and_answers_the_session(relay, stack):
    with as_user(relay) as user:
        chat_session_id = new_session(user, FAST, title="before", system="Be brief.")
        # WHEN the title and the model change
        model = "sim:first_token_ms=0,tokens_per_second=0,tokens=5"
        response = user.patch(f"/sessions/{chat_session_id}", json={"title": "after", "model": model})
        # THEN the answer is the session, changed, and the rest kept
        assert response.status_code == 200, response.text
        session = response.json()
        assert (session["chatSessionId"], session["title"], session["provider"], session["model"]) == (
            chat_session_id, "after", "simulated", model)
        assert session["system"] == "Be brief." and session["fallbacks"] == []
        # AND the next turn uses the new model, and the list shows the new title
        stream_chat(user, chat_session_id)
        assert stack.provider.records[-1].model == model
        assert user.get("/sessions").json()["sessions"][0]["title"] == "after"


def test_patch_sets_and_removes_fallbacks(relay):
    with as_user(relay) as user:
        chat_session_id = new_session(user, FAST)
        fallbacks = [{"provider": "simulated", "model": "sim"}]
        assert user.patch(f"/sessions/{chat_session_id}", json={"fallbacks": fallbacks}).json()["fallbacks"] == (
            fallbacks)
        assert user.patch(f"/sessions/{chat_session_id}", json={"fallbacks": []}).json()["fallbacks"] == []


@pytest.mark.parametrize(("body", "code"), [
    ({}, "validation_error"),
    ({"title": None}, "validation_error"),
    ({"title": ""}, "validation_error"),
    ({"title": "t" * 201}, "validation_error"),
    ({"title": 7}, "validation_error"),
    ({"system": "s" * 8001}, "validation_error"),
    ({"provider": "nope"}, "validation_error"),
    ({"provider": "openai"}, "model_not_offered"),  # the session's model is not one OpenAI offers here
    ({"provider": "openai", "model": "gpt-unlisted"}, "model_not_offered"),
    ({"fallbacks": [{"provider": "simulated"}]}, "validation_error"),
    ({"fallbacks": "simulated"}, "validation_error"),
])
def test_patch_is_validated_as_creation_is_and_a_refusal_changes_nothing(relay, dynamodb, body, code):
    with as_user(relay) as user:
        chat_session_id = new_session(user, FAST, title="kept")
        before = items_of(dynamodb, chat_session_id)
        response = user.patch(f"/sessions/{chat_session_id}", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == code, response.text
        assert items_of(dynamodb, chat_session_id) == before


def test_patch_of_a_session_that_is_not_there_is_a_404(relay):
    with as_user(relay) as user:
        for chat_session_id in ("01HZY0000000000000000NOPE0", "not-an-id"):
            response = user.patch(f"/sessions/{chat_session_id}", json={"title": "x"})
            assert response.status_code == 404 and response.json()["error"]["code"] == "session_not_found"


# Titles from the first message.

def test_a_session_without_a_title_takes_one_from_its_first_message(relay):
    with as_user(relay) as user:
        chat_session_id = new_session(user, FAST)
        question = "How do I stream\nanswers from AWS Lambda to a browser without buffering them?"
        stream_chat(user, chat_session_id, question)
        stream_chat(user, chat_session_id, "And a second question")
        [listed] = user.get("/sessions").json()["sessions"]
    assert listed["title"] == "How do I stream answers from AWS Lambda to a browser without…"


def test_a_title_the_client_gave_is_kept(relay):
    with as_user(relay) as user:
        chat_session_id = new_session(user, FAST, title="Mine")
        stream_chat(user, chat_session_id, "Something else entirely")
        assert user.get("/sessions").json()["sessions"][0]["title"] == "Mine"


# Deleting.

def test_deleting_a_session_leaves_no_item_of_it_and_a_second_delete_writes_nothing(relay, dynamodb):
    with as_user(relay) as user:
        # GIVEN a session with turns, an idempotency claim and an answer long enough for part items (30,000 tokens
        # of the simulated answer are about 130,000 characters: more than an item's 90,000, store.MAX_ITEM_CHARS)
        chat_session_id = new_session(user, "sim:first_token_ms=0,tokens_per_second=0,tokens=30000")
        body = {"chatSessionId": chat_session_id, "content": "hi", "clientMessageId": f"client-{ULID()}"}
        assert user.post("/chat/stream", json=body).status_code == 200
        kinds = {item["SK"]["S"].split("#")[0] for item in items_of(dynamodb, chat_session_id)}
        assert kinds == {"SESSION", "MSG", "CLIENT"}
        assert any("partOf" in item for item in items_of(dynamodb, chat_session_id))
        # WHEN it is deleted THEN nothing of it is left
        assert user.delete(f"/sessions/{chat_session_id}").status_code == 204
        assert items_of(dynamodb, chat_session_id) == []
        assert user.get(f"/sessions/{chat_session_id}/messages").status_code == 404
        assert user.get("/sessions").json() == {"sessions": []}
        # AND deleting it again is a 404 that writes nothing
        before = count_items(dynamodb)
        again = user.delete(f"/sessions/{chat_session_id}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "session_not_found"
        assert count_items(dynamodb) == before


def test_deleting_a_session_while_an_answer_streams_into_it_stops_the_turn_and_nothing_comes_back(
        relay, dynamodb, capsys):
    with as_user(relay) as user:
        # GIVEN an answer streaming into a session
        chat_session_id = new_session(user, SLOW)
        received, thread = stream_in_background(user, chat_session_id)
        try:
            wait_for(lambda: len(received.tokens) >= 3)
            # WHEN the session is deleted
            assert user.delete(f"/sessions/{chat_session_id}").status_code == 204
            assert items_of(dynamodb, chat_session_id) == []
        finally:
            thread.join(30)
        # THEN the stream ended with a terminal event at its next checkpoint, long before its 20 s answer
        assert not thread.is_alive()
        assert received.events[-1][0] == "error" and received.one("error")["code"] == "session_not_found"
        assert len(received.tokens) < 100
        # AND its final write brought nothing back, and still nothing after the turn ended
        assert items_of(dynamodb, chat_session_id) == []
        time.sleep(1.5)  # a checkpoint left in flight would have landed by now
        assert items_of(dynamodb, chat_session_id) == []
    # AND its metrics were flushed, counting the stop
    turns = [line for line in emf_lines(capsys.readouterr().out) if line.get("model") == SLOW]
    assert turns and turns[-1]["Requests"] == [1.0] and turns[-1]["StreamErrors"] == [1.0]


def test_an_erase_cut_short_is_hidden_at_once_and_finished_by_asking_again(relay, dynamodb):
    with as_user(relay) as user:
        # GIVEN a session an erase marked and then failed to finish (the store went away)
        chat_session_id = new_session(user, FAST)
        stream_chat(user, chat_session_id)
        dynamodb.update_item(TableName=TABLE_NAME, Key={"PK": {"S": f"SESSION#{chat_session_id}"},
                                                        "SK": {"S": "SESSION"}},
                             UpdateExpression="SET deleting = :now", ExpressionAttributeValues={":now": {"N": "1"}})
        # THEN it is gone for every route, and nothing new lands in it
        assert user.get("/sessions").json() == {"sessions": []}
        assert user.get(f"/sessions/{chat_session_id}/messages").status_code == 404
        chat = user.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi",
                                               "clientMessageId": "late"})
        assert chat.status_code == 404
        assert len(items_of(dynamodb, chat_session_id)) == 3
        # WHEN the user deletes it again THEN the erase is finished
        assert user.delete(f"/sessions/{chat_session_id}").status_code == 204
        assert items_of(dynamodb, chat_session_id) == []


def test_deleting_all_conversations_erases_every_one_of_the_callers_and_no_one_elses(relay, dynamodb):
    with as_user(relay, "erin") as erin, as_user(relay, "frank") as frank:
        # GIVEN three sessions of erin's, one of them left half-erased, and one of frank's
        erins = [new_session(erin, FAST) for _ in range(3)]
        for chat_session_id in erins:
            stream_chat(erin, chat_session_id)
        dynamodb.update_item(TableName=TABLE_NAME, Key={"PK": {"S": f"SESSION#{erins[0]}"}, "SK": {"S": "SESSION"}},
                             UpdateExpression="SET deleting = :now", ExpressionAttributeValues={":now": {"N": "1"}})
        franks = new_session(frank, FAST)
        stream_chat(frank, franks)
        # WHEN erin erases all of hers
        assert erin.delete("/sessions").status_code == 204
        # THEN none of her items is left, and frank's are all there
        assert all(items_of(dynamodb, chat_session_id) == [] for chat_session_id in erins)
        assert erin.get("/sessions").json() == {"sessions": []}
        assert len(items_of(dynamodb, franks)) == 3
        assert [session["chatSessionId"] for session in frank.get("/sessions").json()["sessions"]] == [franks]
