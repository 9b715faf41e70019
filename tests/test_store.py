import asyncio
import time
from dataclasses import replace

import pytest
from ulid import ULID

from devtools.local_run import TABLE_NAME
from relay.reasoning import ReasoningOption
from relay.records import COMPLETE, PENDING, STREAMING, ChatSession, StoredMessage
from relay.store import MAX_ITEM_CHARS, ChatStore, SessionNotFound


@pytest.fixture()
def store(stack, dynamodb):
    return ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)


def make_session() -> ChatSession:
    return ChatSession(str(ULID()), "simulated", "sim", "2026-11-25T00:00:00.000Z", title="t", system="be brief")


_next_id = int(ULID())


def message(role: str, content: str, status: str = COMPLETE) -> StoredMessage:
    global _next_id
    _next_id += 1  # strictly increasing ids, as the relay makes them within a turn
    return StoredMessage(str(ULID.from_int(_next_id)), role, content, status, "2026-11-25T00:00:00.000Z",
                         {"ttftMs": 12.5, "n": 3})


def test_created_session_loads_with_empty_history(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    conversation = asyncio.run(store.load_conversation(session.chat_session_id, history_limit=10, owner_id=""))
    assert conversation is not None
    assert conversation.session == session
    assert conversation.history == []


def test_unknown_session_loads_as_none(store):
    assert asyncio.run(store.load_conversation(str(ULID()), history_limit=10, owner_id="")) is None
    assert asyncio.run(store.list_messages(str(ULID()), "")) is None


def test_history_is_the_newest_messages_oldest_first_within_the_limit(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    messages = [message("user" if i % 2 == 0 else "ai", f"m{i}") for i in range(5)]
    for m in messages:
        asyncio.run(store.put_messages(session.chat_session_id, m))
    conversation = asyncio.run(store.load_conversation(session.chat_session_id, history_limit=3, owner_id=""))
    assert [m.content for m in conversation.history] == ["m2", "m3", "m4"]


def test_the_part_items_of_a_long_answer_do_not_push_its_question_out_of_the_history(store):
    # GIVEN a question whose answer, with its reasoning, takes four items, and a read of two messages
    session = make_session()
    asyncio.run(store.create_session(session))
    question, answer = message("user", "q"), message("ai", "a" * MAX_ITEM_CHARS * 2)
    asyncio.run(store.put_messages(session.chat_session_id, question,
                                   replace(answer, reasoning="r" * MAX_ITEM_CHARS * 2)))
    # WHEN the conversation is loaded THEN both messages are, whole
    conversation = asyncio.run(store.load_conversation(session.chat_session_id, history_limit=2, owner_id=""))
    assert [(m.role, len(m.content), len(m.reasoning)) for m in conversation.history] == [
        ("user", 1, 0), ("ai", MAX_ITEM_CHARS * 2, MAX_ITEM_CHARS * 2)]


def test_put_messages_replaces_a_placeholder_and_keeps_numbers(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    placeholder = message("ai", "", STREAMING)
    asyncio.run(store.put_messages(session.chat_session_id, placeholder))
    final = StoredMessage(placeholder.message_id, "ai", "done text", COMPLETE, placeholder.created_at,
                          {"ttftMs": 101.25, "usage": {"outputTokens": 7}})
    asyncio.run(store.put_messages(session.chat_session_id, final))
    assert asyncio.run(store.list_messages(session.chat_session_id, "")) == [final]


def test_list_messages_pages_through_everything(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    big = "x" * 300_000  # ~300 KB each: a 1 MB query page holds only a few
    written = [message("user", big + str(i)) for i in range(5)]
    for m in written:
        asyncio.run(store.put_messages(session.chat_session_id, m))
    listed = asyncio.run(store.list_messages(session.chat_session_id, ""))
    assert [m.message_id for m in listed] == [m.message_id for m in written]


def test_items_carry_a_ttl(store, dynamodb):
    session = make_session()
    asyncio.run(store.create_session(session))
    item = dynamodb.get_item(TableName=TABLE_NAME, Key={"PK": {"S": f"SESSION#{session.chat_session_id}"},
                                                        "SK": {"S": "SESSION"}})["Item"]
    assert int(item["expiresAt"]["N"]) > 0


def test_a_turn_moves_the_sessions_ttl_and_last_activity(store, dynamodb):
    # GIVEN a session whose TTL was set long ago
    session = make_session()
    asyncio.run(store.create_session(session))
    key = {"PK": {"S": f"SESSION#{session.chat_session_id}"}, "SK": {"S": "SESSION"}}
    dynamodb.update_item(TableName=TABLE_NAME, Key=key, UpdateExpression="SET expiresAt = :old",
                         ExpressionAttributeValues={":old": {"N": str(int(time.time()) + 60)}})
    # WHEN a turn stores its message
    user, answer = message("user", "hi"), message("ai", "", PENDING)
    asyncio.run(store.begin_turn(session, user, answer))
    # THEN the session lives a whole TTL from now, and says when it was last active
    item = dynamodb.get_item(TableName=TABLE_NAME, Key=key)["Item"]
    assert int(item["expiresAt"]["N"]) >= time.time() + store.ttl_seconds - 60
    assert item["updatedAt"]["S"] == user.created_at
    assert [m.message_id for m in asyncio.run(store.list_messages(session.chat_session_id, ""))] == [
        user.message_id, answer.message_id]


def test_a_turn_cannot_store_its_message_into_a_session_that_is_gone(store):
    session = make_session()  # never created (or deleted since it was read)
    with pytest.raises(SessionNotFound):
        asyncio.run(store.begin_turn(session, message("user", "hi"), message("ai", "", PENDING)))
    assert asyncio.run(store.list_messages(session.chat_session_id, "")) is None


def test_a_checkpoint_that_lands_after_the_final_write_changes_nothing(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    answer = message("ai", "", PENDING)
    asyncio.run(store.begin_turn(session, message("user", "hi"), answer))
    final = StoredMessage(answer.message_id, "ai", "the whole answer", COMPLETE, answer.created_at)
    asyncio.run(store.put_messages(session.chat_session_id, final))
    assert asyncio.run(store.checkpoint(session.chat_session_id, answer.message_id, "the wh")) is True
    assert asyncio.run(store.get_message(session.chat_session_id, answer.message_id)) == final


def test_the_app_imports_no_boto3():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = "import app, time, sys; time.sleep(1); print('boto3' in sys.modules, 's3transfer' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=root / "functions/chat", capture_output=True, text=True,
                            env={"PYTHONPATH": str(root / "layers/relay"), "PATH": "/usr/bin:/bin",
                                 "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.stdout.strip() == "False False", result.stderr


def test_a_long_reasoning_is_stored_beside_the_content_across_part_items_and_read_back_whole(store, dynamodb):
    # GIVEN an answer whose text and reasoning, at 4 UTF-8 bytes a character, need five items of 400 KB at most
    session = make_session()
    asyncio.run(store.create_session(session))
    content, reasoning = "🙂" * 150_000, "🤔" * 230_000
    placeholder = message("ai", "", PENDING)
    answer = StoredMessage(placeholder.message_id, "ai", content, COMPLETE, placeholder.created_at,
                           reasoning=reasoning, reasoning_signatures=("c2ln",))
    # WHEN it is stored
    asyncio.run(store.put_messages(session.chat_session_id, answer))
    # THEN it took part items (each under DynamoDB's limit, or the write would have failed), and reads back whole,
    # alone (over more than one 1 MB page) and in the listing
    pages = dynamodb.get_paginator("query").paginate(
        TableName=TABLE_NAME, KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)", ProjectionExpression="SK",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session.chat_session_id}"},
                                   ":sk": {"S": f"MSG#{answer.message_id}"}})
    assert sum(page["Count"] for page in pages) == 5
    assert asyncio.run(store.get_message(session.chat_session_id, answer.message_id)) == answer
    assert asyncio.run(store.list_messages(session.chat_session_id, "")) == [answer]


def test_a_checkpoint_stores_the_reasoning_so_far_in_what_the_text_leaves_of_the_first_item(store):
    session = make_session()
    asyncio.run(store.create_session(session))
    answer = message("ai", "", PENDING)
    asyncio.run(store.begin_turn(session, message("user", "hi"), answer))
    asyncio.run(store.checkpoint(session.chat_session_id, answer.message_id, "", "r" * 100_000))
    reasoning_phase = asyncio.run(store.get_message(session.chat_session_id, answer.message_id))
    assert (reasoning_phase.status, reasoning_phase.reasoning) == (STREAMING, "r" * MAX_ITEM_CHARS)
    asyncio.run(store.checkpoint(session.chat_session_id, answer.message_id, "t" * 30_000, "r" * 100_000))
    answering = asyncio.run(store.get_message(session.chat_session_id, answer.message_id))
    assert (answering.content, answering.reasoning) == ("t" * 30_000, "r" * (MAX_ITEM_CHARS - 30_000))


def test_a_sessions_reasoning_option_is_stored_with_it(store):
    session = replace(make_session(), reasoning=ReasoningOption(budget_tokens=4000))
    asyncio.run(store.create_session(session))
    loaded = asyncio.run(store.load_conversation(session.chat_session_id, history_limit=1, owner_id=""))
    assert loaded is not None and loaded.session == session


def test_changing_one_setting_keeps_what_changed_meanwhile_in_the_others(store):
    # GIVEN a session read for a PATCH of its system text, and then, before the PATCH writes, named by its first
    # message (a turn's write)
    session = replace(make_session(), title=None, owner_id="u")
    asyncio.run(store.create_session(session))
    read = asyncio.run(store.get_session(session.chat_session_id, "u"))
    asyncio.run(store.begin_turn(read, message("user", "hi"), message("ai", "", PENDING), title="First title"))
    # WHEN the PATCH writes the setting it changes
    updated, _ = asyncio.run(store.update_session(replace(read, system="Be terse."), ("system",)))
    # THEN the title the turn gave it stays
    assert (updated.system, updated.title) == ("Be terse.", "First title")
    assert asyncio.run(store.get_session(session.chat_session_id, "u")).title == "First title"
