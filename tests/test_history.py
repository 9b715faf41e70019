"""What of a session's history goes to the provider: alternating roles, complete answers only, within limits."""

from relay.providers.base import ChatMessage
from relay.records import ChatSession, Conversation, StoredMessage
from relay.turn import _provider_history

SESSION = ChatSession("01HZY00000000000000000DEM0", "simulated", "sim", "2026-01-01T00:00:00.000Z")


def stored(role: str, content: str, status: str = "complete") -> StoredMessage:
    return StoredMessage("id", role, content, status, "2026-01-01T00:00:00.000Z")


def test_failed_answers_are_left_out_and_user_messages_around_them_merge():
    history = [stored("user", "one"), stored("ai", "partial", "error"), stored("user", "two")]
    messages = _provider_history(Conversation(SESSION, history), ChatMessage("user", "three"), max_chars=10_000)
    assert messages == [ChatMessage("user", "one\n\ntwo\n\nthree")]


def test_oldest_messages_are_dropped_until_the_history_fits_the_character_limit():
    history = [stored("user", "a" * 50), stored("ai", "b" * 50), stored("user", "c" * 50), stored("ai", "d" * 50)]
    messages = _provider_history(Conversation(SESSION, history), ChatMessage("user", "new"), max_chars=110)
    assert messages == [ChatMessage("user", "c" * 50), ChatMessage("assistant", "d" * 50), ChatMessage("user", "new")]


def test_the_new_message_always_goes_even_alone_and_the_conversation_opens_with_the_user():
    history = [stored("user", "a" * 50), stored("ai", "b" * 50)]
    messages = _provider_history(Conversation(SESSION, history), ChatMessage("user", "new"), max_chars=60)
    assert messages == [ChatMessage("user", "new")]
