"""One chat turn: relay a provider's answer to the client while the store keeps both sides of the conversation.

The caller has admitted the request and loaded the session and its history (the one read before the provider
call). Then, in order:

1. ask      the provider request leaves at once;
2. accept   meanwhile the user message and a ``pending`` answer are stored, in one transaction that also keeps the
            session current (and titles it the first time) and marks the request's claim accepted; a write cut
            off by its time budget is read back, since it may have landed. Only then does the client hear
            ``Started``: a message the client holds an id for is never lost (nothing stored: ``Failed``, and the
            claim is released for a retry);
3. open     the first batch, the request retried and then the session's fallbacks tried, only until it comes;
4. relay    each batch of deltas (the answer's text, and the model's reasoning in runs of its own, in the order
            the provider sent them) goes to the client as it arrives; both so far are checkpointed about once a
            second in the background (where a Stop is noticed), never holding a batch back; timeouts and the
            Lambda deadline bound every wait (a reasoning delta ends the wait for the first one as a token does);
5. finish   the answer is stored with its terminal status and metadata (within the time left) and the turn's
            usage with it, the metrics are flushed, and only then does the client get ``Done`` or ``Failed``;
6. name     with ``TITLE_MODEL``, a session's first complete answer is followed by a model-made title, asked for
            once the answer is stored and awaited after ``Done`` is on its way (see relay/titles.py).

A regenerate is a turn that stores no user message: it answers the last one again, and the answer it replaces is
kept, marked as superseded.

Images come read already (relay/admission.py), by attachment id: each user message of the history the provider is
sent carries those of its attachments that are among them, the new message all of its own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import anyio
from ulid import ULID

from relay import config, telemetry, tracing
from relay.context import Invocation
from relay.errors import (
    ANSWER_IN_PROGRESS,
    CANCELLED,
    DEADLINE,
    PROVIDER_RATE_LIMITED,
    PROVIDER_UNAVAILABLE,
    SESSION_NOT_FOUND,
    STORE_UNAVAILABLE,
    ProviderError,
    StoreError,
)
from relay.events import (
    Done,
    Failed,
    ProviderEvent,
    Reasoning,
    ReasoningDelta,
    Started,
    TextDelta,
    Tokens,
    TurnEvent,
)
from relay.providers.base import ChatMessage, ChatProvider, ChatRequest, Image
from relay.reader import ProviderReader, Timeouts
from relay.records import COMPLETE, PENDING, Attachment, Conversation, StoredMessage, now_iso
from relay.store import AnswerReplaced, ChatStore, SessionNotFound
from relay.tally import Tally
from relay.titles import ModelTitles, title_from_message
from relay.usage import UsageLedger, estimated_tokens

__all__ = ["Connection", "Regeneration", "TurnSettings", "new_message_ids", "relay_turn"]

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
    usage: UsageLedger | None = None  # where each turn's tokens are added up (None: nowhere)
    titles: ModelTitles | None = None  # TITLE_MODEL's

    @classmethod
    def from_settings(cls, settings: config.Settings, metric_model: Callable[[str, str], str],
                      usage: UsageLedger | None = None, titles: ModelTitles | None = None) -> TurnSettings:
        return cls(Timeouts.from_settings(settings), settings.provider_max_retries, settings.history_max_chars,
                   metric_model, usage, titles)


@dataclass(frozen=True, slots=True)
class Regeneration:
    """A turn that answers the conversation's last user message again (its conversation ends before it)."""

    user_message: StoredMessage  # stored already
    replaces: str | None  # the answer it replaces, kept and marked superseded (None: it had none)


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
    regeneration: Regeneration | None = None,
    attachments: tuple[Attachment, ...] = (),
    images: Mapping[str, Image] | None = None,
    images_read_ms: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncGenerator[TurnEvent, None]:
    """The events of one turn, from ``Started`` (or a ``Failed`` when the message could not be stored) to ``Done``
    or ``Failed``. ``content`` is the new message, with its ``attachments``, or with ``regeneration`` the one
    answered again; ``images`` are those the provider is sent, by attachment id (``images_read_ms``: the time
    reading earlier messages' took, for the log)."""
    turn = Turn(conversation, content, provider=provider, store=store, invocation=invocation, settings=settings,
                connection=connection or Connection(), fallbacks=fallbacks,
                message_ids=message_ids or new_message_ids(), client_message_id=client_message_id,
                regeneration=regeneration, attachments=attachments, images=images or {}, clock=clock)
    turn.log.update(images=len(images or {}), images_read_ms=images_read_ms)
    return turn.events(store_read_ms)


class Turn:
    def __init__(self, conversation: Conversation, content: str, *, provider: ChatProvider, store: ChatStore,
                 invocation: Invocation, settings: TurnSettings, connection: Connection,
                 fallbacks: Sequence[tuple[ChatProvider, str]], message_ids: tuple[str, str],
                 client_message_id: str | None, regeneration: Regeneration | None,
                 attachments: tuple[Attachment, ...], images: Mapping[str, Image],
                 clock: Callable[[], float]) -> None:
        self.session = conversation.session
        self.candidates = [(provider, self.session.model), *fallbacks]
        self.store = store
        self.settings = settings
        self.connection = connection
        self.client_message_id = client_message_id
        self.regeneration = regeneration
        self.clock = clock
        timeouts = settings.timeouts
        self.deadline = (invocation.deadline_ms / 1000 if invocation.deadline_ms
                         else time.time() + timeouts.function_timeout)  # epoch seconds
        self.stop_at = clock() + self.deadline - time.time() - timeouts.deadline_margin
        self.user_message, self.answer = _new_turn_messages(content, attachments, int(self.deadline * 1000),
                                                            message_ids)
        if regeneration is not None:
            self.user_message = regeneration.user_message
        new = _user_message(self.user_message, images)
        self.messages = _provider_history(conversation, new, settings.history_max_chars, images)
        # A session with no title takes one from its first message (a regenerate brings no new message; a message
        # of images alone gives none, and the next one does).
        self.first_title = (title_from_message(content) or None
                            if self.session.title is None and regeneration is None else None)
        self.names_session = bool(self.first_title and not conversation.history and settings.titles)
        self.naming: asyncio.Future[None] | None = None  # the model-made title, once asked for
        self.tally = Tally(self.session.provider, self.session.model, invocation.received_at, clock,
                           telemetry.take_cold_start())
        self.accepted = False  # the user message and the pending answer are stored
        self.log: dict[str, object] = {
            "request_id": invocation.request_id, "chat_session_id": self.session.chat_session_id,
            "message_id": self.answer.message_id, "provider": self.session.provider, "model": self.session.model,
            "regenerate": regeneration is not None}

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
                    deltas, first = self._count(batch)
                    tally.read_ended()
                    for delta in deltas:
                        yield delta
                    if not logged:  # logged once the first batch is on its way, not before
                        logged = True
                        telemetry.logger.info("stream started", extra=self.log)
                    if first:
                        telemetry.logger.info("first token", extra={**self.log, "ttft_ms": tally.ttft_ms})
                    # A model that reasons is alive: from its first reasoning delta on, only the idle timeout applies.
                    batch = await reader.next(waiting_for_first=tally.first_delta_at is None)
        except ProviderError as exc:
            tally.error = exc
        except SessionNotFound:
            tally.store_failure = SESSION_NOT_FOUND  # deleted since it was read: nothing was accepted
        except AnswerReplaced:
            tally.store_failure = ANSWER_IN_PROGRESS  # another regenerate got there first: nothing was accepted
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
        try:
            yield self._outcome()
            if self.naming is not None:
                await self.naming  # the client has its answer: the title can take the time the stream stays open
        finally:
            if self.naming is not None:
                self.naming.cancel()  # the client left (and the turn is stopped with it): the first title stays

    def _ask(self, candidate: ChatProvider, model: str) -> ProviderReader:
        request = ChatRequest(model, self.messages, self.session.system, reasoning=self.session.reasoning)
        self.tally.exchange = request.exchange  # the last one asked is the one that answers
        if request.reasoning is not None:
            self.tally.reasoning_ignored = candidate.reasoning_unsupported(model)
        reader = ProviderReader(candidate.stream(request), candidate.name, self.settings.timeouts, self.stop_at,
                                self.clock, self._checkpoint)
        reader.start()
        return reader

    async def _accept(self) -> None:
        """Store the user message and the pending answer (while the provider thinks): only a stored message is
        announced with ``Started``. A write cut off by its time budget may still have landed (DynamoDB's answer
        lost on the way back, or botocore's own retry landing): then the message is stored, and is answered."""
        replaces = self.regeneration.replaces if self.regeneration else None
        try:
            await self.store.begin_turn(self.session, self.user_message, self.answer, self.client_message_id,
                                        title=self.first_title, supersedes=replaces)
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
                    if exc.code in (DEADLINE, CANCELLED, SESSION_NOT_FOUND) or self.clock() + delay >= self.stop_at:
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

    def _count(self, batch: list[ProviderEvent]) -> tuple[list[Tokens | Reasoning], bool]:
        """The batch's deltas for the client, in the provider's order, the answer's text and the reasoning each in
        runs of their own; and whether it holds the answer's first token."""
        runs: list[Tokens | Reasoning] = []
        tally, first = self.tally, False
        for event in batch:
            if isinstance(event, TextDelta):
                first = tally.token(event.text) or first
                if not runs or not isinstance(runs[-1], Tokens):
                    runs.append(Tokens([]))
            elif isinstance(event, ReasoningDelta):
                tally.reasoning(event.text)
                if not runs or not isinstance(runs[-1], Reasoning):
                    runs.append(Reasoning([]))
            else:
                tally.note(event)
                continue
            runs[-1].texts.append(event.text)
        return runs, first

    async def _checkpoint(self) -> None:
        """The text so far into the store, which also says whether someone asked to stop this answer. A failed
        checkpoint is only logged: the next one, or the final write, carries the text."""
        try:
            going_on = await self.store.checkpoint(self.session.chat_session_id, self.answer.message_id,
                                                   "".join(self.tally.parts), "".join(self.tally.reasoning_parts))
        except SessionNotFound:
            raise ProviderError(SESSION_NOT_FOUND, "the chat session was deleted: this answer is not kept") from None
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
            if self.names_session and tally.status == COMPLETE and tally.store_failure is None:
                self.naming = asyncio.ensure_future(self._name_session())
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
            "time_to_first_reasoning_ms": report.time_to_first_reasoning_ms,
            "reasoning_tokens": report.reasoning_tokens, "reasoning_chars": sum(map(len, tally.reasoning_parts)),
            "provider_connect_ms": tally.connect_ms, "provider_first_byte_ms": tally.first_byte_ms,
            "provider_connection": tally.exchange.connection if tally.exchange else None})

    async def _store_answer(self) -> None:
        """The final write, within the time the function has left, with the turn's usage: when it cannot land, the
        client hears ``store_unavailable`` (the last checkpoint stays, and reads as interrupted once the deadline
        has passed), and the usage is lost with it (logged). An answer whose session was deleted under it is not
        stored, but its usage still is: its tokens were spent."""
        left = self.deadline - time.time() - FINAL_WRITE_MARGIN_SECONDS
        timeout = max(MIN_FINAL_WRITE_SECONDS, min(config.STORE_CALL_TIMEOUT_SECONDS, left))
        usage, spent = self.settings.usage, self._spent()
        addition = usage.addition(self.session.owner_id, *spent) if usage else None
        try:
            await self.store.finish_turn(self.session.chat_session_id, self.tally.reply(self.answer),
                                         also=[{"Update": addition}] if addition else [], timeout=timeout)
        except SessionNotFound:
            self.tally.store_failure = SESSION_NOT_FOUND
            if usage is not None:
                await self._add_usage(usage, spent, timeout)  # a write of its own, on this rare path only
        except StoreError:
            telemetry.logger.exception("the answer could not be stored", extra={"usage_lost": spent})
            self.tally.store_failure = STORE_UNAVAILABLE

    def _spent(self) -> tuple[int, int]:
        """The turn's input and output tokens: the provider's count, else the deltas relayed and, once the answer
        began (a request refused before it is not billed), an estimate of the request's: the provider bills it
        whether or not the answer went on to its count."""
        tally = self.tally
        if tally.usage is not None:
            return tally.usage.input_tokens, tally.output_tokens
        if tally.first_delta_at is None:
            return 0, tally.output_tokens
        sent = sum(len(message.content) for message in self.messages) + len(self.session.system or "")
        return estimated_tokens(sent), tally.output_tokens

    async def _add_usage(self, usage: UsageLedger, spent: tuple[int, int], timeout: float) -> None:
        try:
            await usage.add(self.session.owner_id, *spent, timeout=timeout)
        except StoreError:
            telemetry.logger.warning("a turn's usage could not be added", extra={"usage_lost": spent})

    async def _name_session(self) -> None:
        """Replace the first message's title with a model-made one, unless the user renamed the session meanwhile;
        within TITLE_TIMEOUT_SECONDS and the function's deadline. Failures are only logged."""
        assert self.settings.titles is not None and self.first_title is not None
        left = self.deadline - time.time() - FINAL_WRITE_MARGIN_SECONDS
        try:
            with anyio.fail_after(max(0.0, left)):
                title = await self.settings.titles.propose(self.user_message.content, "".join(self.tally.parts))
                if title is not None and title != self.first_title:
                    await self.store.replace_title(self.session.chat_session_id, title, self.first_title)
        except (StoreError, TimeoutError):
            telemetry.logger.warning("the model-made title was not stored", extra=self.log)

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
        if tally.store_failure == ANSWER_IN_PROGRESS:
            return Failed(ANSWER_IN_PROGRESS, "another request regenerated this answer first: nothing was stored")
        if not self.accepted:
            return Failed(STORE_UNAVAILABLE, "the message could not be stored, so it was not sent: send it again")
        if tally.store_failure is not None:
            return Failed(tally.store_failure, "the answer could not be stored")
        return Done(self.answer.message_id, tally.finish_reason,
                    tally.usage.input_tokens if tally.usage else None, tally.output_tokens, tally.ttft_ms,
                    tally.tokens_per_second, tally.reasoning_tokens, tally.time_to_first_reasoning_ms)


def _backoff(attempt: int) -> float:
    """Full jitter: anywhere up to an exponentially growing cap, so that retries from many runs spread out."""
    return random.uniform(0, min(config.RETRY_MAX_SECONDS, config.RETRY_BASE_SECONDS * 2**attempt))


def new_message_ids() -> tuple[str, str]:
    """A turn's user message id and answer id, both from the process's ULID generator, so the answer sorts after.
    Not the user's id plus one: within a millisecond python-ulid makes each ULID the last plus one, so the next
    turn's user message would take that id and overwrite this turn's answer."""
    return str(ULID()), str(ULID())


def _new_turn_messages(content: str, attachments: tuple[Attachment, ...], deadline_ms: int,
                       ids: tuple[str, str]) -> tuple[StoredMessage, StoredMessage]:
    created_at = now_iso()
    return (
        StoredMessage(ids[0], "user", content, COMPLETE, created_at, attachments=attachments),
        StoredMessage(ids[1], "ai", "", PENDING, created_at, deadline_at=deadline_ms),
    )


def _user_message(message: StoredMessage, images: Mapping[str, Image]) -> ChatMessage:
    """A user message as the provider is sent it: with those of its images in ``images``. One of images alone sent
    without them (past the request's budget, expired from the bucket, or for a model that takes none) says so in
    words: Anthropic, Bedrock and Gemini answer a user message of no text with a 400, every turn from then on."""
    carried = tuple(images[attachment.attachment_id] for attachment in message.attachments
                    if attachment.attachment_id in images)
    text = message.content
    if not text and not carried and message.attachments:
        count = len(message.attachments)
        text = f"[{'an image' if count == 1 else f'{count} images'}, not sent again]"
    return ChatMessage("user", text, carried)


def _provider_history(conversation: Conversation, new: ChatMessage, max_chars: int,
                      images: Mapping[str, Image] | None = None) -> list[ChatMessage]:
    """Earlier user messages (with those of their images in ``images``), each with the answer it stands with
    (`_answer_sent`), then the new message, as providers want them: roles alternating, so two user messages in a
    row (the answer between them failed) become one; the oldest are left out until the whole fits in
    ``max_chars``."""
    history: list[ChatMessage] = []
    answers: list[StoredMessage] = []
    turns: list[ChatMessage] = []
    for message in conversation.history:
        if message.role == "user":
            turns += _answer_sent(answers)
            answers = []
            turns.append(_user_message(message, images or {}))
        else:
            answers.append(message)
    for turn in [*turns, *_answer_sent(answers), new]:
        if history and history[-1].role == turn.role:
            earlier = history.pop()
            text = "\n\n".join(content for content in (earlier.content, turn.content) if content)
            turn = ChatMessage(turn.role, text, earlier.images + turn.images)
        history.append(turn)
    while len(history) > 1 and sum(len(message.content) for message in history) > max_chars:
        history.pop(0)
    if history[0].role == "assistant" and len(history) > 1:
        history.pop(0)  # providers want the conversation to open with the user
    return history


def _answer_sent(answers: list[StoredMessage]) -> list[ChatMessage]:
    """The answer a user message stands with in the history, if any: its current answer when complete; else the
    newest complete one a regenerate replaced, so a regenerate that failed or was stopped does not take the answer
    the user had out of the conversation."""
    complete = [answer for answer in answers if answer.status == COMPLETE and answer.content]
    current = [answer for answer in complete if answer.superseded_by is None]
    return [ChatMessage("assistant", answer.content) for answer in (current or complete)[-1:]]
