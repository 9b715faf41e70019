"""Titles without the client's help: the first message's at once, cut at a word boundary; with TITLE_MODEL a
model-made one after the first answer, over the real stack, asked for only once the answer is stored and never
holding ``done`` back; a failing title model fails nothing."""

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse
from ulid import ULID

from devtools.local_run import TABLE_NAME
from devtools.simulated_provider import answer_tokens
from relay.config import Settings
from relay.records import ChatSession
from relay.store import ChatStore
from relay.titles import title_from_message
from tests.helpers import app_client, new_session, stream_chat

TITLE_MODEL = "sim:first_token_ms=0,tokens_per_second=0,tokens=4"
SLOW_TITLE_MODEL = "sim:first_token_ms=1500,tokens_per_second=0,tokens=4"
FAST = "sim:first_token_ms=0,tokens_per_second=0,tokens=5"


def test_a_short_message_is_its_own_title():
    assert title_from_message("  What is SSE?  ") == "What is SSE?"


def test_a_message_on_many_lines_becomes_one_line():
    assert title_from_message("First line\n\n  second\tline") == "First line second line"


def test_a_long_message_is_cut_at_the_last_word_that_fits_with_an_ellipsis():
    title = title_from_message("Streaming answers from a Lambda function through a function URL, with the Web Adapter")
    assert title == "Streaming answers from a Lambda function through a function…"
    assert len(title) <= 61


def test_one_very_long_word_is_cut_inside_it():
    assert title_from_message("x" * 200) == "x" * 60 + "…"


def test_punctuation_before_the_cut_is_dropped():
    assert title_from_message("a" * 57 + ", and then some more words") == "a" * 57 + "…"


def test_invisible_and_direction_changing_characters_are_left_out():
    assert title_from_message("\u202eevil\u202c \u200btitle\ufeff") == "evil title"
    assert title_from_message("\u200b\u2066\u00ad") is None  # nothing visible: no title
    assert title_from_message("\u200b" * 10_000 + "late words") is None  # only the head is looked at
    assert title_from_message("👨\u200d👩\u200d👧 family") == "👨\u200d👩\u200d👧 family"  # joiners stay


def test_a_first_message_with_nothing_visible_leaves_the_session_untitled_for_the_next(stack, dynamodb):
    with app_client(dynamodb) as client:
        chat_session_id = new_session(client, FAST)
        stream_chat(client, chat_session_id, "\u200b\u200b\u202e")
        assert title_of(client, chat_session_id) is None
        stream_chat(client, chat_session_id, "A real question")
        assert title_of(client, chat_session_id) == "A real question"


@pytest.fixture()
def titled(stack, dynamodb) -> Iterator[httpx.Client]:
    with app_client(dynamodb, title_model=("simulated", TITLE_MODEL)) as client:
        yield client


def title_of(client: httpx.Client, chat_session_id: str) -> str | None:
    [session] = [s for s in client.get("/sessions", params={"limit": 100}).json()["sessions"]
                 if s["chatSessionId"] == chat_session_id]
    return session["title"]


def test_a_model_names_the_session_after_its_first_answer(titled, stack):
    chat_session_id = new_session(titled, FAST)
    received = stream_chat(titled, chat_session_id, "Tell me about streaming")
    assert received.one("done")
    # THEN the title model was asked with the conversation, and its answer is the title
    [asked] = [record for record in stack.provider.records if record.model == TITLE_MODEL][-1:]
    question = " ".join(message["content"] for message in asked.messages)
    assert "Tell me about streaming" in question and "".join(answer_tokens(5)) in question
    assert title_of(titled, chat_session_id) == "".join(answer_tokens(4)).strip()
    # AND a second turn asks for no other title
    asked_before = len([record for record in stack.provider.records if record.model == TITLE_MODEL])
    stream_chat(titled, chat_session_id, "And more")
    assert len([record for record in stack.provider.records if record.model == TITLE_MODEL]) == asked_before


def test_the_title_is_asked_for_after_done_is_sent_and_before_the_stream_closes(stack, dynamodb):
    with app_client(dynamodb, title_model=("simulated", SLOW_TITLE_MODEL)) as client:
        chat_session_id = new_session(client, FAST)
        arrivals: dict[str, float] = {}
        with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                               "content": "hello"}) as source:
            for sse in source.iter_sse():
                arrivals.setdefault(sse.event, time.perf_counter())
            closed = time.perf_counter()
        [record] = [record for record in stack.provider.records if record.model == SLOW_TITLE_MODEL][-1:]
        # done came before the title model's first token, and the stream closed after its last
        assert arrivals["done"] < record.first_token_at <= record.last_token_at < closed
        assert title_of(client, chat_session_id) == "".join(answer_tokens(4)).strip()


@pytest.mark.parametrize("encoding", ["ai-sdk", "text/plain"])
def test_a_stream_that_ends_only_when_it_closes_is_not_held_open_for_a_title(stack, dynamodb, encoding):
    # GIVEN a slow title model, and a client for which the answer is over only when the stream closes (useChat's
    # status turns "ready" then; plain text has no done event)
    title_model = "sim:first_token_ms=1500,tokens_per_second=0,tokens=7"
    with app_client(dynamodb, title_model=("simulated", title_model)) as client:
        chat_session_id = new_session(client, FAST)
        if encoding == "ai-sdk":
            request = {"params": {"protocol": "ai-sdk"}, "json": {"id": chat_session_id, "messages": [
                {"id": f"m-{ULID()}", "role": "user", "parts": [{"type": "text", "text": "hello there"}]}]}}
        else:
            request = {"headers": {"accept": "text/plain"},
                       "json": {"chatSessionId": chat_session_id, "content": "hello there"}}
        sent = time.perf_counter()
        with client.stream("POST", "/chat/stream", **request) as response:
            text = response.read().decode()
            closed = time.perf_counter()
        # THEN the stream closed, the answer whole, before any title model's first token
        assert response.status_code == 200
        assert ('"type":"finish"' in text) if encoding == "ai-sdk" else text == "".join(answer_tokens(5))
        assert all(record.first_token_at is None or record.first_token_at > closed
                   for record in stack.provider.records if record.model == title_model and record.started_at > sent)
        # AND the session keeps its first message's title
        assert title_of(client, chat_session_id) == "hello there"


def test_a_failing_title_model_fails_nothing_and_the_first_message_title_stays(stack, dynamodb):
    with app_client(dynamodb, title_model=("simulated", "sim:fault=http_500")) as client:
        chat_session_id = new_session(client, FAST)
        received = stream_chat(client, chat_session_id, "Why is the sky blue?")
        assert received.one("done") and [name for name, _ in received.events][-1] == "done"
        assert title_of(client, chat_session_id) == "Why is the sky blue?"


def test_a_session_the_client_named_is_not_renamed_by_the_model(titled, stack):
    chat_session_id = new_session(titled, FAST, title="My own")
    stream_chat(titled, chat_session_id, "hello")
    assert title_of(titled, chat_session_id) == "My own"


def test_a_title_the_user_changed_meanwhile_is_not_replaced(stack, dynamodb):
    # GIVEN a session whose automatic title the user has since changed
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)
    session = ChatSession(str(ULID()), "simulated", "sim", "2026-01-01T00:00:00.000Z", title="renamed", owner_id="u")
    asyncio.run(store.create_session(session))
    # WHEN the model's title arrives THEN it gives way
    assert asyncio.run(store.replace_title(session.chat_session_id, "model's", replacing="first message")) is False
    assert asyncio.run(store.get_session(session.chat_session_id, "u")).title == "renamed"
    assert asyncio.run(store.replace_title(session.chat_session_id, "model's", replacing="renamed")) is True


def test_title_model_is_a_known_provider_slash_a_model_and_a_bedrock_arn_keeps_its_slashes():
    arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku"
    assert Settings.from_environment({"TITLE_MODEL": f"bedrock/{arn}"}).title_model == ("bedrock", arn)
    assert Settings.from_environment({"TITLE_MODEL": ""}).title_model is None
    with pytest.raises(ValueError, match="<provider>/<model>"):
        Settings.from_environment({"TITLE_MODEL": "gpt-4o-mini"})
    with pytest.raises(ValueError, match="not one of"):
        Settings.from_environment({"TITLE_MODEL": "nope/gpt-4o-mini"})
