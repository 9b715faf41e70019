"""Following an answer from an offset: what a reconnecting client, or a retry that joins a turn, gets.

The stored text from the offset (and the stored reasoning from its own offset, before it) comes at once; while
the answer is still being generated the store is polled at a bounded rate for what its run checkpoints (about once
a second); the stored terminal state ends it, as the turn would have. A finished answer replays at once. A store
that stops answering ends it with ``store_unavailable`` once it has failed for ``STORE_OUTAGE_SECONDS``: the client
always gets a terminal event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from relay.errors import NOT_FOUND, STORE_UNAVAILABLE, StoreError
from relay.events import Done, Failed, Reasoning, Started, Tokens, TurnEvent
from relay.records import COMPLETE, LIVE, StoredMessage
from relay.store import CLAIM_STALE_SECONDS, ChatStore

__all__ = ["attach", "follow_message", "outcome"]

POLL_SECONDS = 0.5
STORE_OUTAGE_SECONDS = 10.0  # polls failing this long end the stream (the generating run keeps its own clock)


async def follow_message(
    store: ChatStore, chat_session_id: str, message: StoredMessage, offset: int, poll_seconds: float = POLL_SECONDS,
    *, reasoning_offset: int = 0,
) -> AsyncGenerator[TurnEvent, None]:
    """The answer from character ``offset`` of its text and ``reasoning_offset`` of its reasoning."""
    failing_since: float | None = None
    while True:
        if len(message.reasoning) > reasoning_offset:
            yield Reasoning([message.reasoning[reasoning_offset:]])
            reasoning_offset = len(message.reasoning)
        if len(message.content) > offset:
            yield Tokens([message.content[offset:]])
            offset = len(message.content)
        if message.status not in LIVE:
            yield outcome(message)
            return
        await asyncio.sleep(poll_seconds)
        try:
            latest = await store.get_message(chat_session_id, message.message_id)
        except StoreError:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= STORE_OUTAGE_SECONDS:
                yield Failed(STORE_UNAVAILABLE, "the answer cannot be read right now; follow it again later")
                return
            continue
        failing_since = None
        if latest is None:
            yield Failed(NOT_FOUND, "the answer is gone (its session was deleted)")
            return
        message = latest


def outcome(message: StoredMessage) -> TurnEvent:
    metadata = message.metadata
    if message.status == COMPLETE:
        usage = metadata.get("usage") or {}
        return Done(message.message_id, metadata.get("finishReason"), usage.get("inputTokens"),
                    usage.get("outputTokens"), metadata.get("ttftMs"), metadata.get("tokensPerSecond"),
                    usage.get("reasoningTokens"), metadata.get("timeToFirstReasoningMs"))
    error = metadata.get("error") or {}
    return Failed(error.get("code") or message.status, error.get("message") or f"the answer ended {message.status}")


async def attach(
    store: ChatStore, chat_session_id: str, ids: tuple[str, str], poll_seconds: float = POLL_SECONDS,
    wait_seconds: float = CLAIM_STALE_SECONDS + 5,
) -> AsyncGenerator[TurnEvent, None]:
    """A retried request joins the turn its first attempt started: same ids, the whole answer from the start. The
    first attempt stores its message within seconds of its claim, or never (then its claim goes stale and the next
    retry is a turn of its own). ``Started`` waits for the message, as a turn's does: a client told of a message
    must find it stored."""
    give_up_at = time.monotonic() + wait_seconds
    message = None
    while message is None:
        try:
            message = await store.get_message(chat_session_id, ids[1])
        except StoreError:
            message = None
        if message is None:
            if time.monotonic() > give_up_at:
                yield Failed(NOT_FOUND, "the first attempt of this request was lost: send it again")
                return
            await asyncio.sleep(poll_seconds)
    yield Started(*ids)
    async for event in follow_message(store, chat_session_id, message, 0, poll_seconds):
        yield event
