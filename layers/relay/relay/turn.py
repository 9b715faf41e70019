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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from ulid import ULID

from relay import config, telemetry, tracing
from relay.context import Invocation
from relay.errors import (
    CANCELLED,
    DEADLINE,
    PROVIDER_INCOMPLETE,
    PROVIDER_RATE_LIMITED,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    ProviderError,
)
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.providers import ChatMessage, ChatProvider, ChatRequest
from relay.store import (
    COMPLETE,
    ERROR,
    INCOMPLETE,
    INTERRUPTED,
    PENDING,
    ChatStore,
    Conversation,
    StoredMessage,
    StoreError,
    now_iso,
)

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


class ProviderReader:
    """Waits for the provider's next batch while keeping the turn's clocks: the first-token and idle timeouts,
    the deadline, and a checkpoint every ``timeouts.checkpoint`` seconds even while the provider is silent (which
    is also when a request to stop is noticed). The provider is read by a task of its own into a queue, so that
    waking up for a checkpoint does not disturb the read, and batches that have arrived are taken without waiting."""

    def __init__(self, stream: AsyncIterator[list[ProviderEvent]], provider: str, timeouts: Timeouts,
                 stop_at: float, clock: Callable[[], float], checkpoint: Callable[[], Awaitable[bool]]) -> None:
        self._stream = stream
        self._provider = provider
        self._timeouts = timeouts
        self._stop_at = stop_at
        self._clock = clock
        self._checkpoint = checkpoint
        self._batches: asyncio.Queue[list[ProviderEvent] | BaseException | None] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._next_checkpoint = clock() + timeouts.checkpoint

    async def _read(self) -> None:
        try:
            async for batch in self._stream:
                self._batches.put_nowait(batch)
            self._batches.put_nowait(None)
        except Exception as exc:  # handed to the turn, in order, after the batches before it
            self._batches.put_nowait(exc)

    def start(self) -> None:
        """Sends the request: the provider is read from now on, whether or not anyone waits for it yet."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._read())

    async def next(self, *, waiting_for_first: bool) -> list[ProviderEvent] | None:
        self.start()
        waiting = self._timeouts.first_token if waiting_for_first else self._timeouts.idle
        give_up_at = min(self._clock() + waiting, self._stop_at)
        while True:
            if self._clock() >= self._next_checkpoint:
                done = await self._checkpoint()
                wait = self._timeouts.checkpoint if done else CHECKPOINT_RETRY_SECONDS
                self._next_checkpoint = self._clock() + wait
            if not self._batches.empty():
                return self._unpack(self._batches.get_nowait())
            wake_at = min(give_up_at, self._next_checkpoint)
            try:
                async with asyncio.timeout(max(0.0, wake_at - self._clock())):
                    return self._unpack(await self._batches.get())
            except TimeoutError:
                pass
            if self._clock() >= give_up_at:
                if give_up_at >= self._stop_at:
                    raise ProviderError(DEADLINE, "the function's time limit is near: the answer so far is stored")
                raise ProviderError(PROVIDER_TIMEOUT, f"{self._provider} sent nothing for {waiting:g} s")

    @staticmethod
    def _unpack(item: list[ProviderEvent] | BaseException | None) -> list[ProviderEvent] | None:
        if isinstance(item, BaseException):
            raise item
        return item

    def checkpoint_soon(self) -> None:
        self._next_checkpoint = self._clock()

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        await self._stream.aclose()  # type: ignore[attr-defined]


@dataclass(slots=True)
class Connection:
    """The client's side, as the HTTP layer sees it: the turn goes on without it, but reports that it left."""

    gone: bool = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_token: float = config.DEFAULT_FIRST_TOKEN_TIMEOUT_SECONDS
    idle: float = config.DEFAULT_IDLE_TIMEOUT_SECONDS
    deadline_margin: float = config.DEFAULT_DEADLINE_MARGIN_SECONDS
    function_timeout: float = config.DEFAULT_FUNCTION_TIMEOUT_SECONDS  # the deadline when Lambda gives none
    checkpoint: float = config.DEFAULT_CHECKPOINT_SECONDS

    @classmethod
    def from_settings(cls, settings: config.Settings) -> Timeouts:
        return cls(settings.first_token_timeout_seconds, settings.idle_timeout_seconds,
                   settings.deadline_margin_seconds, settings.function_timeout_seconds, settings.checkpoint_seconds)


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
        reader = ProviderReader(candidate.stream(ChatRequest(model, messages, session.system)), candidate.name,
                                timeouts, stop_at, clock, checkpoint)
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
                "relay_overhead_ms": report.relay_overhead_ms, "store_read_ms": store_read_ms})
    yield tally.outcome(placeholder.message_id)


@dataclass
class Tally:
    """What one turn has received so far, and what it adds up to: the stored metadata, the metrics, the outcome."""

    provider: str
    model: str
    received_at: float
    clock: Callable[[], float]
    cold_start: bool = False
    parts: list[str] = field(default_factory=list)
    sent_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error: ProviderError | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)  # the ones that failed before the answer began
    retries: int = 0
    fell_back: bool = False
    cut_off: bool = False  # the turn was stopped before its provider finished
    disconnected: bool = False  # the client went away (the turn may still have finished)
    store_failure: str | None = None

    def request_sent(self) -> None:
        self.sent_at = self.clock()

    def token(self, text: str) -> bool:
        """Count a delta; True for the first one."""
        self.last_token_at = self.clock()
        self.parts.append(text)
        if self.first_token_at is None:
            self.first_token_at = self.last_token_at
            return True
        return False

    def note(self, event: ProviderEvent) -> None:
        if isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason

    @property
    def status(self) -> str:
        if self.error is not None:
            return {PROVIDER_INCOMPLETE: INCOMPLETE, DEADLINE: INTERRUPTED, CANCELLED: INTERRUPTED}.get(
                self.error.code, ERROR)
        return INTERRUPTED if self.cut_off else COMPLETE

    @property
    def ttft_ms(self) -> float | None:
        return self._ms(self.first_token_at)

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens if self.usage else len(self.parts)

    @property
    def tokens_per_second(self) -> float | None:
        if self.first_token_at is None or self.last_token_at is None or self.last_token_at <= self.first_token_at:
            return None
        return round(self.output_tokens / (self.last_token_at - self.first_token_at), 3)

    def reply(self, placeholder: StoredMessage) -> StoredMessage:
        metadata: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "finishReason": self.finish_reason,
            "usage": {"inputTokens": self.usage.input_tokens, "outputTokens": self.usage.output_tokens}
            if self.usage else None,
            "ttftMs": self.ttft_ms,
            "tokensPerSecond": self.tokens_per_second,
            "error": {"code": self.error.code, "message": self.error.message} if self.error else None,
            "attempts": self.attempts or None,
        }
        return StoredMessage(placeholder.message_id, "ai", "".join(self.parts), self.status, placeholder.created_at,
                             {key: value for key, value in metadata.items() if value is not None})

    def report(self) -> telemetry.TurnReport:
        return telemetry.TurnReport(
            provider=self.provider, model=self.model, status=self.status,
            duration_ms=(self.clock() - self.received_at) * 1000, ttft_ms=self.ttft_ms,
            tokens_per_second=self.tokens_per_second, input_tokens=self.usage.input_tokens if self.usage else None,
            output_tokens=self.output_tokens, error_code=self.error.code if self.error else self.store_failure,
            client_disconnected=self.disconnected, relay_overhead_ms=self._ms(self.sent_at),
            cold_start=self.cold_start, retries=self.retries, fallbacks=1 if self.fell_back else 0,
        )

    def outcome(self, message_id: str) -> TurnEvent:
        if self.error is not None:
            return Failed(self.error.code, self.error.message)
        if self.store_failure is not None:
            return Failed(self.store_failure, "the answer could not be stored")
        return Done(message_id, self.finish_reason, self.usage.input_tokens if self.usage else None,
                    self.output_tokens, self.ttft_ms, self.tokens_per_second)

    def _ms(self, at: float | None) -> float | None:
        return None if at is None else round((at - self.received_at) * 1000, 3)


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
CHECKPOINT_RETRY_SECONDS = 0.05  # how soon to try a checkpoint again while the first write is still under way


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
