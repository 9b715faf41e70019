"""One chat turn: relay a provider's answer to the client while the store keeps both sides of the conversation.

The caller has already loaded the session and its history (the one read before the provider call). Then the
provider request leaves at once (retried, then the session's fallbacks tried, only until its first batch); the
user message and a ``streaming`` placeholder are written once the provider answers; each batch of text deltas
goes to the client as it arrives, and the text so far is checkpointed about once a second (where a Stop is
noticed); timeouts and the Lambda deadline bound every wait. At the end the AI message is stored with its
terminal status and metadata, the metrics are flushed, and only then does the client get ``Done`` or ``Failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import anyio
from ulid import ULID

from relay import config, telemetry, tracing
from relay.context import Invocation
from relay.errors import (
    CANCELLED,
    DEADLINE,
    PROVIDER_RATE_LIMITED,
    PROVIDER_UNAVAILABLE,
    ProviderError,
)
from relay.events import ProviderEvent, TextDelta
from relay.providers import ChatMessage, ChatProvider, ChatRequest
from relay.reader import ProviderReader, Timeouts
from relay.store import (
    COMPLETE,
    PENDING,
    ChatStore,
    Conversation,
    StoredMessage,
    StoreError,
    now_iso,
)
from relay.tally import Tally

STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True, slots=True)
class Started:
    user_message_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """The provider's deltas of one network read, each of them a token event for the client."""

    texts: list[str]


@dataclass(frozen=True, slots=True)
class Done:
    message_id: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    tokens_per_second: float | None


@dataclass(frozen=True, slots=True)
class Failed:
    code: str
    message: str


TurnEvent = Started | Tokens | Done | Failed


@dataclass(slots=True)
class Connection:
    """The client's side, as the HTTP layer sees it: the turn goes on without it, but reports that it left."""

    gone: bool = False


async def relay_turn(
    conversation: Conversation,
    content: str,
    *,
    provider: ChatProvider,
    store: ChatStore,
    invocation: Invocation,
    history_max_chars: int = config.DEFAULT_HISTORY_MAX_CHARS,
    store_read_ms: float | None = None,
    timeouts: Timeouts = Timeouts(),
    connection: Connection | None = None,
    fallbacks: Sequence[tuple[ChatProvider, str]] = (),
    max_retries: int = config.DEFAULT_PROVIDER_MAX_RETRIES,
    message_ids: tuple[str, str] | None = None,
    metric_model: Callable[[str, str], str] = lambda provider, model: model,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncIterator[TurnEvent]:
    session = conversation.session
    deadline_ms = invocation.deadline_ms or int((time.time() + timeouts.function_timeout) * 1000)
    stop_at = clock() + deadline_ms / 1000 - time.time() - timeouts.deadline_margin
    user_message, placeholder = _new_turn_messages(content, deadline_ms, message_ids or new_message_ids())
    messages = _provider_history(conversation, ChatMessage("user", content), history_max_chars)
    tally = Tally(session.provider, session.model, invocation.received_at, clock, telemetry.take_cold_start())
    log = {"request_id": invocation.request_id, "chat_session_id": session.chat_session_id,
           "message_id": placeholder.message_id, "provider": session.provider, "model": session.model}
    answering = asyncio.Event()

    async def save_soon() -> None:
        # While the provider thinks, or once its first tokens are on their way if it answers at once: the write's
        # CPU work then never delays the request or the first token, and a crash can lose at most this window.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_WRITE_DELAY_SECONDS):
                await answering.wait()
        await store.put_messages(session.chat_session_id, user_message, placeholder)

    saving: asyncio.Task[None] | None = None

    async def checkpoint() -> bool:
        """The text so far into the store, which also says whether someone asked to stop this answer; False when
        the pending answer is not stored yet, to be tried again shortly."""
        if saving is None or not saving.done():
            return False
        if saving.exception() is not None:
            return True  # the final write will store both messages
        try:
            going_on = await store.checkpoint(session.chat_session_id, placeholder.message_id, "".join(tally.parts))
        except StoreError:
            telemetry.logger.warning("checkpoint failed; the final write will carry the text", exc_info=True)
            return True
        if not going_on:
            raise ProviderError(CANCELLED, "the answer was stopped on request; the text so far is stored")
        return True

    def ask(candidate: ChatProvider, model: str) -> ProviderReader:
        request = ChatRequest(model, messages, session.system)
        tally.exchange = request.exchange  # the last one asked is the one that answers
        reader = ProviderReader(candidate.stream(request), candidate.name, timeouts, stop_at, clock, checkpoint)
        reader.start()
        return reader

    async def open_answer(first: ProviderReader) -> tuple[ProviderReader, list[ProviderEvent] | None]:
        """The first batch of an answer: retried on connection errors, 429 and 5xx, then the session's fallbacks,
        all before anything has been relayed (never after)."""
        failure: ProviderError | None = None
        for index, (candidate, model) in enumerate([(provider, session.model), *fallbacks]):
            for attempt in range(max_retries + 1):
                reader = first if index == attempt == 0 else ask(candidate, model)
                try:
                    batch = await reader.next(waiting_for_first=True)
                except ProviderError as exc:
                    await reader.close()
                    failure = exc
                    tally.attempts.append({"provider": candidate.name, "model": model, "error": exc.code})
                    delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                    if exc.code in (DEADLINE, CANCELLED) or clock() + delay >= stop_at:
                        raise
                    if exc.code not in RETRYABLE or attempt == max_retries:
                        break
                    tally.retries += 1
                    await asyncio.sleep(delay)
                    continue
                tally.provider, tally.model, tally.fell_back = candidate.name, model, index > 0
                return reader, batch
        assert failure is not None
        raise failure

    reader: ProviderReader | None = None
    try:
        with tracing.subsegment("provider.stream", provider=session.provider, model=session.model):
            reader = ask(provider, session.model)  # the request leaves before anything is written to the client
            tally.request_sent()
            yield Started(user_message.message_id, placeholder.message_id)
            # The user message and the pending answer are stored while the provider thinks (see save_soon).
            saving = asyncio.create_task(save_soon())
            reader, batch = await open_answer(reader)
            reader.checkpoint_soon()  # the first checkpoint also marks the answer streaming
            started = False
            while batch is not None:
                texts = []
                first = False
                for event in batch:
                    if isinstance(event, TextDelta):
                        first = tally.token(event.text) or first
                        texts.append(event.text)
                    else:
                        tally.note(event)
                if texts:
                    yield Tokens(texts)
                answering.set()
                if not started:  # logged once the first batch is on its way, not before
                    started = True
                    telemetry.logger.info("stream started", extra=log)
                if first:
                    telemetry.logger.info("first token", extra={**log, "ttft_ms": tally.ttft_ms})
                batch = await reader.next(waiting_for_first=tally.first_token_at is None)
    except ProviderError as exc:
        tally.error = exc
    except BaseException:  # cancelled, or closed at a yield: the turn stops here
        tally.cut_off = tally.disconnected = True
        raise
    finally:
        # Runs even when the client is gone: the answer so far is stored whatever happens.
        with anyio.CancelScope(shield=True):
            if reader is not None:
                await reader.close()
            tally.disconnected = tally.disconnected or bool(connection and connection.gone)
            reply = tally.reply(placeholder)
            with tracing.subsegment("store.write_answer"):
                tally.store_failure = await _store_reply(store, session.chat_session_id, saving, user_message, reply)
            report = tally.report()
            telemetry.publish_turn_metrics(replace(report, model=metric_model(report.provider, report.model)))
            telemetry.logger.info("stream ended", extra={
                **log, "status": report.status, "error_code": report.error_code, "ttft_ms": report.ttft_ms,
                "tokens_per_second": report.tokens_per_second, "duration_ms": round(report.duration_ms, 1),
                "output_tokens": report.output_tokens, "client_disconnected": report.client_disconnected,
                "relay_overhead_ms": report.relay_overhead_ms, "store_read_ms": store_read_ms,
                "provider_connect_ms": tally.connect_ms, "provider_first_byte_ms": tally.first_byte_ms})
    yield _outcome(tally, placeholder.message_id)


def _outcome(tally: Tally, message_id: str) -> TurnEvent:
    if tally.error is not None:
        return Failed(tally.error.code, tally.error.message)
    if tally.store_failure is not None:
        return Failed(tally.store_failure, "the answer could not be stored")
    return Done(message_id, tally.finish_reason, tally.usage.input_tokens if tally.usage else None,
                tally.output_tokens, tally.ttft_ms, tally.tokens_per_second)


async def _store_reply(
    store: ChatStore, chat_session_id: str, saving: asyncio.Task[None] | None, user: StoredMessage,
    reply: StoredMessage,
) -> str | None:
    """Write the final AI message (and the user message, if its write failed or never started); the error code,
    if any."""
    messages = [reply]
    try:
        if saving is None:
            messages.insert(0, user)
        else:
            await saving
    except Exception:
        telemetry.logger.warning("first write failed; retrying with the final one", exc_info=True)
        messages.insert(0, user)
    try:
        await store.put_messages(chat_session_id, *messages)
    except Exception:
        telemetry.logger.exception("the answer could not be stored")
        return STORE_UNAVAILABLE
    return None


RETRYABLE = {PROVIDER_RATE_LIMITED, PROVIDER_UNAVAILABLE}
FIRST_WRITE_DELAY_SECONDS = 0.05  # see save_soon in relay_turn


def _backoff(attempt: int) -> float:
    """Full jitter: anywhere up to an exponentially growing cap, so that retries from many runs spread out."""
    return random.uniform(0, min(config.RETRY_MAX_SECONDS, config.RETRY_BASE_SECONDS * 2**attempt))


def new_message_ids() -> tuple[str, str]:
    """A turn's user message id and answer id: the answer's is the user's plus one, so it always sorts right after."""
    user_id = ULID()
    return str(user_id), str(ULID.from_int(int(user_id) + 1))


def _new_turn_messages(content: str, deadline_ms: int, ids: tuple[str, str]) -> tuple[StoredMessage, StoredMessage]:
    created_at = now_iso()
    return (
        StoredMessage(ids[0], "user", content, COMPLETE, created_at),
        StoredMessage(ids[1], "ai", "", PENDING, created_at, deadline_at=deadline_ms),
    )


def _provider_history(conversation: Conversation, new: ChatMessage, max_chars: int) -> list[ChatMessage]:
    """Earlier user messages and complete answers, then the new message, as providers want them: roles
    alternating, so two user messages in a row (the answer between them failed) become one; the oldest are left
    out until the whole fits in ``max_chars``."""
    history: list[ChatMessage] = []
    for message in [*conversation.history, None]:
        if message is None:
            turn = new
        elif message.role == "user":
            turn = ChatMessage("user", message.content)
        elif message.status == COMPLETE and message.content:
            turn = ChatMessage("assistant", message.content)
        else:
            continue
        if history and history[-1].role == turn.role:
            turn = ChatMessage(turn.role, history.pop().content + "\n\n" + turn.content)
        history.append(turn)
    while len(history) > 1 and sum(len(message.content) for message in history) > max_chars:
        history.pop(0)
    if history[0].role == "assistant" and len(history) > 1:
        history.pop(0)  # providers want the conversation to open with the user
    return history
