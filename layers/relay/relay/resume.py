"""Following an answer from an offset: what a reconnecting client gets.

The stored text from the offset comes at once; while the answer is still being generated the store is polled at a
bounded rate for the text its run checkpoints (about once a second); the stored terminal state ends it, as the turn
would have. A finished answer replays at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from relay.store import COMPLETE, LIVE, ChatStore, StoredMessage
from relay.turn import Done, Failed, Started, Tokens, TurnEvent

POLL_SECONDS = 0.5


async def follow_message(
    store: ChatStore, chat_session_id: str, message: StoredMessage, offset: int, poll_seconds: float = POLL_SECONDS
) -> AsyncIterator[TurnEvent]:
    while True:
        if len(message.content) > offset:
            yield Tokens([message.content[offset:]])
            offset = len(message.content)
        if message.status not in LIVE:
            yield outcome(message)
            return
        await asyncio.sleep(poll_seconds)
        latest = await store.get_message(chat_session_id, message.message_id)
        if latest is None:
            return
        message = latest


def outcome(message: StoredMessage) -> TurnEvent:
    metadata = message.metadata
    if message.status == COMPLETE:
        usage = metadata.get("usage") or {}
        return Done(message.message_id, metadata.get("finishReason"), usage.get("inputTokens"),
                    usage.get("outputTokens"), metadata.get("ttftMs"), metadata.get("tokensPerSecond"))
    error = metadata.get("error") or {}
    return Failed(error.get("code") or message.status, error.get("message") or f"the answer ended {message.status}")


async def attach(
    store: ChatStore, chat_session_id: str, ids: tuple[str, str], wait_seconds: float,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[TurnEvent]:
    """A retried request joins the turn its first attempt started: same ids, the whole answer from the start."""
    yield Started(*ids)
    give_up_at = time.monotonic() + wait_seconds
    while (message := await store.get_message(chat_session_id, ids[1])) is None:  # it is written on first answer
        if time.monotonic() > give_up_at:
            yield Failed("not_found", "the first attempt of this request left no answer")
            return
        await asyncio.sleep(poll_seconds)
    async for event in follow_message(store, chat_session_id, message, 0, poll_seconds):
        yield event
