"""One chat turn: relay a provider's answer to the client while the store keeps both sides of the conversation.

The caller has admitted the request and loaded the session and its history (the one read before the provider
call). Then, in order:

1. ask      the provider request leaves at once;
2. accept   meanwhile the user message and a ``pending`` answer are stored, and only then does the client hear
            ``Started``: a message the client holds an id for is never lost (nothing stored: ``Failed``);
3. open     the first batch, the request retried and then the session's fallbacks tried, only until it comes;
4. relay    each batch of text deltas goes to the client as it arrives; the text so far is checkpointed about once
            a second in the background (where a Stop is noticed), never holding a batch back; timeouts and the
            Lambda deadline bound every wait;
5. finish   the answer is stored with its terminal status and metadata (within the time left), the metrics are
            flushed, and only then does the client get ``Done`` or ``Failed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
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
    SESSION_NOT_FOUND,
    STORE_UNAVAILABLE,
    ProviderError,
    StoreError,
)
from relay.events import Done, Failed, ProviderEvent, Started, TextDelta, Tokens, TurnEvent
from relay.providers import ChatMessage, ChatProvider, ChatRequest
from relay.reader import ProviderReader, Timeouts
from relay.records import COMPLETE, PENDING, Conversation, StoredMessage, now_iso
from relay.store import ChatStore, SessionNotFound
from relay.tally import Tally

__all__ = ["Connection", "TurnSettings", "new_message_ids", "relay_turn"]

RETRYABLE = {PROVIDER_RATE_LIMITED, PROVIDER_UNAVAILABLE}
# The final write gets what is left before the Lambda deadline, less this: the answer's last bytes must still
# reach the client before the function is stopped.
FINAL_WRITE_MARGIN_SECONDS = 0.5
MIN_FINAL_WRITE_SECONDS = 0.2  # even past the deadline margin, the write is tried


@dataclass(slots=True)
class Connection:
    """The client's side, as the HTTP layer sees it: the turn goes on without it, but reports that it left."""

    gone: bool = False


def _same_model(provider: str, model: str) -> str:
    return model


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What every turn of a deployment shares."""

    timeouts: Timeouts = Timeouts()
    max_retries: int = config.DEFAULT_PROVIDER_MAX_RETRIES
    history_max_chars: int = config.DEFAULT_HISTORY_MAX_CHARS
    metric_model: Callable[[str, str], str] = _same_model  # the model as a metrics dimension

    @classmethod
    def from_settings(cls, settings: config.Settings, metric_model: Callable[[str, str], str]) -> TurnSettings:
        return cls(Timeouts.from_settings(settings), settings.provider_max_retries, settings.history_max_chars,
                   metric_model)


def relay_turn(
    conversation: Conversation,
    content: str,
    *,
    provider: ChatProvider,
    store: ChatStore,
    invocation: Invocation,
    settings: TurnSettings = TurnSettings(),
    connection: Connection | None = None,
    fallbacks: Sequence[tuple[ChatProvider, str]] = (),
    message_ids: tuple[str, str] | None = None,
    client_message_id: str | None = None,
    store_read_ms: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncGenerator[TurnEvent, None]:
    """The events of one turn, from ``Started`` (or a ``Failed`` when the message could not be stored) to ``Done``
    or ``Failed``."""
    turn = Turn(conversation, content, provider=provider, store=store, invocation=invocation, settings=settings,
                connection=connection or Connection(), fallbacks=fallbacks,
                message_ids=message_ids or new_message_ids(), client_message_id=client_message_id, clock=clock)
    return turn.events(store_read_ms)


class Turn:
    def __init__(self, conversation: Conversation, content: str, *, provider: ChatProvider, store: ChatStore,
                 invocation: Invocation, settings: TurnSettings, connection: Connection,
                 fallbacks: Sequence[tuple[ChatProvider, str]], message_ids: tuple[str, str],
                 client_message_id: str | None, clock: Callable[[], float]) -> None:
        self.session = conversation.session
        self.candidates = [(provider, self.session.model), *fallbacks]
        self.store = store
        self.settings = settings
        self.connection = connection
        self.client_message_id = client_message_id
        self.clock = clock
        timeouts = settings.timeouts
        self.deadline = (invocation.deadline_ms / 1000 if invocation.deadline_ms
                         else time.time() + timeouts.function_timeout)  # epoch seconds
        self.stop_at = clock() + self.deadline - time.time() - timeouts.deadline_margin
        self.user_message, self.answer = _new_turn_messages(content, int(self.deadline * 1000), message_ids)
        self.messages = _provider_history(conversation, ChatMessage("user", content), settings.history_max_chars)
        self.tally = Tally(self.session.provider, self.session.model, invocation.received_at, clock,
                           telemetry.take_cold_start())
        self.accepted = False  # the user message and the pending answer are stored
        self.log = {"request_id": invocation.request_id, "chat_session_id": self.session.chat_session_id,
                    "message_id": self.answer.message_id, "provider": self.session.provider,
                    "model": self.session.model}

    async def events(self, store_read_ms: float | None) -> AsyncGenerator[TurnEvent, None]:
        tally = self.tally
        reader: ProviderReader | None = None
        try:
            with tracing.subsegment("provider.stream", provider=self.session.provider, model=self.session.model):
                reader = self._ask(*self.candidates[0])  # the request leaves before anything is written
                tally.request_sent()
                await self._accept()
                yield Started(self.user_message.message_id, self.answer.message_id)
                reader, batch = await self._open(reader)
                reader.checkpoint_soon()  # the first checkpoint also marks the answer streaming
                logged = False
                while batch is not None:
                    tokens, first = self._count(batch)
                    if tokens.texts:
                        yield tokens
                    if not logged:  # logged once the first batch is on its way, not before
                        logged = True
                        telemetry.logger.info("stream started", extra=self.log)
                    if first:
                        telemetry.logger.info("first token", extra={**self.log, "ttft_ms": tally.ttft_ms})
                    batch = await reader.next(waiting_for_first=tally.first_token_at is None)
        except ProviderError as exc:
            tally.error = exc
        except SessionNotFound:
            tally.store_failure = SESSION_NOT_FOUND  # deleted since it was read: nothing was accepted
        except StoreError:
            tally.store_failure = STORE_UNAVAILABLE  # the message could not be stored: nothing was accepted
        except BaseException:  # cancelled, or closed at a yield: the turn stops here
            tally.cut_off = tally.disconnected = True
            raise
        finally:
            # Runs even when the client is gone: the answer so far is stored whatever happens.
            with anyio.CancelScope(shield=True):
                if reader is not None:
                    await reader.close()
                await self._finish(store_read_ms)
        yield self._outcome()

    def _ask(self, candidate: ChatProvider, model: str) -> ProviderReader:
        request = ChatRequest(model, self.messages, self.session.system)
        self.tally.exchange = request.exchange  # the last one asked is the one that answers
        reader = ProviderReader(candidate.stream(request), candidate.name, self.settings.timeouts, self.stop_at,
                                self.clock, self._checkpoint)
        reader.start()
        return reader

    async def _accept(self) -> None:
        """Store the user message and the pending answer (while the provider thinks): only a stored message is
        announced with ``Started``. A write cut off by its time budget may still have landed (DynamoDB's answer
        lost on the way back, or botocore's own retry landing): then the message is stored, and is answered."""
        try:
            await self.store.begin_turn(self.session, self.user_message, self.answer, self.client_message_id)
        except SessionNotFound:
            raise
        except StoreError:
            if not await self._stored_after_all():
                raise
        self.accepted = True

    async def _stored_after_all(self) -> bool:
        try:
            return await self.store.get_message(self.session.chat_session_id, self.answer.message_id) is not None
        except StoreError:
            return False

    async def _open(self, first: ProviderReader) -> tuple[ProviderReader, list[ProviderEvent] | None]:
        """The first batch of an answer: retried on connection errors, 429 and 5xx, then the session's fallbacks,
        all before anything has been relayed (never after)."""
        tally, failure = self.tally, None
        for index, (candidate, model) in enumerate(self.candidates):
            for attempt in range(self.settings.max_retries + 1):
                reader = first if index == attempt == 0 else self._ask(candidate, model)
                try:
                    batch = await reader.next(waiting_for_first=True)
                except ProviderError as exc:
                    await reader.close()
                    failure = exc
                    tally.attempts.append({"provider": candidate.name, "model": model, "error": exc.code})
                    delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                    if exc.code in (DEADLINE, CANCELLED) or self.clock() + delay >= self.stop_at:
                        raise
                    if exc.code not in RETRYABLE or attempt == self.settings.max_retries:
                        break
                    tally.retries += 1
                    await anyio.sleep(delay)
                    continue
                tally.provider, tally.model, tally.fell_back = candidate.name, model, index > 0
                return reader, batch
        assert failure is not None
        raise failure

    def _count(self, batch: list[ProviderEvent]) -> tuple[Tokens, bool]:
        """The batch's text for the client, and whether it holds the answer's first token."""
        texts, first = [], False
        for event in batch:
            if isinstance(event, TextDelta):
                first = self.tally.token(event.text) or first
                texts.append(event.text)
            else:
                self.tally.note(event)
        return Tokens(texts), first

    async def _checkpoint(self) -> None:
        """The text so far into the store, which also says whether someone asked to stop this answer. A failed
        checkpoint is only logged: the next one, or the final write, carries the text."""
        try:
            going_on = await self.store.checkpoint(self.session.chat_session_id, self.answer.message_id,
                                                   "".join(self.tally.parts))
        except StoreError:
            telemetry.logger.warning("checkpoint failed; the next one carries the text", exc_info=True)
            return
        if not going_on:
            raise ProviderError(CANCELLED, "the answer was stopped on request; the text so far is stored")

    async def _finish(self, store_read_ms: float | None) -> None:
        tally = self.tally
        tally.disconnected = tally.disconnected or self.connection.gone
        if self.accepted:
            with tracing.subsegment("store.write_answer"):
                await self._store_answer()
        elif self.client_message_id is not None:
            await self._release_claim()
        report = tally.report()
        telemetry.publish_turn_metrics(replace(report, model=self.settings.metric_model(report.provider,
                                                                                         report.model)))
        telemetry.logger.info("stream ended", extra={
            **self.log, "status": report.status, "error_code": report.error_code, "ttft_ms": report.ttft_ms,
            "tokens_per_second": report.tokens_per_second, "duration_ms": round(report.duration_ms, 1),
            "output_tokens": report.output_tokens, "client_disconnected": report.client_disconnected,
            "relay_overhead_ms": report.relay_overhead_ms, "store_read_ms": store_read_ms,
            "provider_connect_ms": tally.connect_ms, "provider_first_byte_ms": tally.first_byte_ms})

    async def _store_answer(self) -> None:
        """The final write, within the time the function has left: when it cannot land, the client hears
        ``store_unavailable`` (the last checkpoint stays, and reads as interrupted once the deadline has passed)."""
        left = self.deadline - time.time() - FINAL_WRITE_MARGIN_SECONDS
        timeout = max(MIN_FINAL_WRITE_SECONDS, min(config.STORE_CALL_TIMEOUT_SECONDS, left))
        try:
            await self.store.put_messages(self.session.chat_session_id, self.tally.reply(self.answer),
                                          timeout=timeout)
        except StoreError:
            telemetry.logger.exception("the answer could not be stored")
            self.tally.store_failure = STORE_UNAVAILABLE

    async def _release_claim(self) -> None:
        assert self.client_message_id is not None
        try:
            await self.store.release_claim(self.session.chat_session_id, self.client_message_id,
                                           self.answer.message_id)
        except StoreError:
            telemetry.logger.warning("a claim could not be released; it is taken over once stale")

    def _outcome(self) -> TurnEvent:
        tally = self.tally
        if tally.error is not None:
            return Failed(tally.error.code, tally.error.message)
        if tally.store_failure == SESSION_NOT_FOUND:
            return Failed(SESSION_NOT_FOUND, "the chat session was deleted: nothing was stored")
        if not self.accepted:
            return Failed(STORE_UNAVAILABLE, "the message could not be stored, so it was not sent: send it again")
        if tally.store_failure is not None:
            return Failed(tally.store_failure, "the answer could not be stored")
        return Done(self.answer.message_id, tally.finish_reason,
                    tally.usage.input_tokens if tally.usage else None, tally.output_tokens, tally.ttft_ms,
                    tally.tokens_per_second)


def _backoff(attempt: int) -> float:
    """Full jitter: anywhere up to an exponentially growing cap, so that retries from many runs spread out."""
    return random.uniform(0, min(config.RETRY_MAX_SECONDS, config.RETRY_BASE_SECONDS * 2**attempt))


def new_message_ids() -> tuple[str, str]:
    """A turn's user message id and answer id, both from the process's ULID generator, so the answer sorts after.
    Not the user's id plus one: within a millisecond python-ulid makes each ULID the last plus one, so the next
    turn's user message would take that id and overwrite this turn's answer."""
    return str(ULID()), str(ULID())


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
