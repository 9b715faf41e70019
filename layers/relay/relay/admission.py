"""Admission of a chat request: whether it may start a turn, join one, or must be refused.

One round trip decides it: the session and its history are read while the user's limits are counted, their spending
read against any token budget, the new message's images read from the attachments bucket and, with a
``clientMessageId``, the id is claimed (a conditional transaction that also checks the session is the caller's).
Images of earlier messages, known only once the history is read, take a second round trip, and only when there are
some within the request's budget for a model that takes them (``images_read_ms`` in the turn's log line). The
outcome is typed: a ``NewTurn`` (its conversation, provider and lease; for a regenerate, the message answered
again), or a ``Rejoin`` of the turn a first attempt of the same request started. A refusal raises
``RequestRejected`` (or ``StoreError``, a 503) after giving back whatever the round trip acquired: the stream lease,
and the claim, so that the client's retry is a new turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio

from relay import config, telemetry, tracing
from relay.attachments import earlier_attachments
from relay.errors import (
    ANSWER_IN_PROGRESS,
    ATTACHMENT_TOO_LARGE,
    ATTACHMENTS_NOT_CONFIGURED,
    CLIENT_MESSAGE_CONFLICT,
    IMAGES_NOT_SUPPORTED,
    NOTHING_TO_REGENERATE,
    PROVIDER_NOT_CONFIGURED,
    SESSION_NOT_FOUND,
    RequestRejected,
    StoreError,
)
from relay.limits import Lease, Limits
from relay.providers.base import ChatProvider, Image
from relay.providers.registry import ProviderRegistry
from relay.records import LIVE, Attachment, Conversation
from relay.store import ChatStore, ClientMessageConflict, SessionNotFound
from relay.turn import Regeneration, new_message_ids
from relay.usage import BudgetExceeded, UsageLedger

__all__ = ["Admission", "NewTurn", "Rejoin", "session_not_found"]


@dataclass(frozen=True, slots=True)
class NewTurn:
    conversation: Conversation
    provider: ChatProvider
    fallbacks: list[tuple[ChatProvider, str]]
    message_ids: tuple[str, str]
    lease: Lease | None  # held by the turn's stream until it ends
    store_read_ms: float
    regeneration: Regeneration | None = None  # a regenerate: the conversation ends before the message it answers
    attachments: tuple[Attachment, ...] = ()  # the new message's images, as stored with it
    images: dict[str, Image] = field(default_factory=dict)  # by attachment id: the new message's and earlier ones'
    images_read_ms: float | None = None  # the second round trip, for earlier messages' images (None: none taken)


@dataclass(frozen=True, slots=True)
class Rejoin:
    message_ids: tuple[str, str]  # the first attempt's (user message, answer)
    lease: Lease | None


def session_not_found() -> RequestRejected:
    return RequestRejected(404, SESSION_NOT_FOUND, "no chat session with this id")


class Admission:
    def __init__(self, store: ChatStore, limits: Limits, usage: UsageLedger, providers: ProviderRegistry,
                 history_limit: int, *, max_images: int = config.DEFAULT_HISTORY_MAX_IMAGES,
                 max_image_bytes: int = config.DEFAULT_HISTORY_MAX_IMAGE_BYTES) -> None:
        self._store = store
        self._limits = limits
        self._usage = usage
        self._providers = providers
        self._history_limit = history_limit
        self._image_budget = max_images, max_image_bytes  # what one provider request carries

    async def turn(self, user_id: str, chat_session_id: str, content: str | None, client_message_id: str | None,
                   deadline_ms: int | None, attachment_ids: tuple[str, ...] = ()) -> NewTurn | Rejoin:
        """``content`` is the new message (with the images ``attachment_ids`` names); None asks for a regenerate of
        the last answer."""
        attachments = self._store.attachments
        if attachment_ids and attachments is None:
            raise RequestRejected(422, ATTACHMENTS_NOT_CONFIGURED, "this relay has no attachments bucket "
                                                                   "(ATTACHMENTS_BUCKET): it takes no images")
        message_ids = new_message_ids()
        # A regenerate's claim remembers no content (none can be empty): the id then names a regenerate.
        claim = (self._store.claim_client_message(chat_session_id, user_id, client_message_id, message_ids,
                                                  content or "", attachment_ids)
                 if client_message_id else _nothing())
        reading = (attachments.read(chat_session_id, attachment_ids) if attachments is not None and attachment_ids
                   else _nothing())
        read_started = time.perf_counter()
        with tracing.subsegment("store.load_conversation"):
            loaded, admitted, claimed, spending, read = await asyncio.gather(
                self._store.load_conversation(chat_session_id, self._history_limit, user_id),
                self._limits.admit(user_id, deadline_ms), claim, self._usage.check(user_id), reading,
                return_exceptions=True)
        store_read_ms = round((time.perf_counter() - read_started) * 1000, 3)
        lease = admitted if isinstance(admitted, Lease) else None
        # A claim that failed in the store may have landed all the same (its answer lost): given back too, if so.
        claimed_here = client_message_id is not None and (claimed is None or isinstance(claimed, StoreError))
        try:
            _raise_failure(loaded)
            if isinstance(claimed, SessionNotFound) or loaded is None:
                raise session_not_found()
            if isinstance(claimed, ClientMessageConflict):
                raise RequestRejected(409, CLIENT_MESSAGE_CONFLICT, "this clientMessageId was already used for "
                                      "another message in this session: make a new one for each message")
            _raise_failure(claimed)
            _raise_failure(admitted)
            assert isinstance(loaded, Conversation)
            if isinstance(claimed, tuple):
                return Rejoin(claimed, lease)  # a retry of a request already under way or done: nothing new spent
            if isinstance(spending, BudgetExceeded):
                telemetry.publish_budget_refusal(spending.period)
            _raise_failure(spending)
            provider = self._providers.get(loaded.session.provider)
            if provider is None:
                raise RequestRejected(422, PROVIDER_NOT_CONFIGURED, "this session's provider is not configured here")
            _raise_failure(read)
            fallbacks = [(candidate, model) for name, model in loaded.session.fallbacks
                         if (candidate := self._providers.get(name)) is not None]
            if content is not None:
                new_images = read if isinstance(read, list) else []
                return await self._with_images(
                    NewTurn(loaded, provider, fallbacks, message_ids, lease, store_read_ms), new_images)
            before, regeneration = _regeneration(loaded)
            return await self._with_images(
                NewTurn(before, provider, fallbacks, message_ids, lease, store_read_ms, regeneration), [])
        except BaseException:
            with anyio.CancelScope(shield=True):
                if lease is not None:
                    await lease.release()
                if claimed_here:
                    assert client_message_id is not None
                    await self._release_claim(chat_session_id, client_message_id, message_ids[1])
            raise

    async def _with_images(self, turn: NewTurn, new: list[tuple[Attachment, Image]]) -> NewTurn:
        """The turn with the images its provider request carries: the new message's (or, for a regenerate, those of
        the message answered again), then earlier messages' within the request's budget; a model that takes no
        images is refused the new message's (422, before any provider call) and sent none of the others. Once
        images go, the fallbacks that take none are left out."""
        session = turn.conversation.session
        again = turn.regeneration.user_message.attachments if turn.regeneration else ()
        sizes = sum(attachment.size for attachment, _ in new)
        if sizes > config.MAX_MESSAGE_IMAGE_BYTES:
            raise RequestRejected(422, ATTACHMENT_TOO_LARGE, f"a message's images may be at most "
                                  f"{config.MAX_MESSAGE_IMAGE_BYTES} bytes in all")
        takes_images = self._providers.takes_images(session.provider, session.model)
        if (new or again) and not takes_images:
            raise RequestRejected(422, IMAGES_NOT_SUPPORTED, f"{session.provider}'s {session.model} takes no images "
                                  "here: send text, or change the session's model")
        if not takes_images or self._store.attachments is None:  # no bucket (any more): the history goes as text
            return turn
        count, total = self._image_budget
        images = {attachment.attachment_id: image for attachment, image in new}
        wanted = [*again, *earlier_attachments(turn.conversation.history, images=count - len(new) - len(again),
                                               total_bytes=total - sizes - sum(a.size for a in again))]
        read_ms = None
        if wanted:
            started = time.perf_counter()
            images.update(await self._store.attachments.read_stored(session.chat_session_id, wanted))
            read_ms = round((time.perf_counter() - started) * 1000, 3)
        fallbacks = [(candidate, model) for candidate, model in turn.fallbacks
                     if not images or self._providers.takes_images(candidate.name, model)]
        return replace(turn, fallbacks=fallbacks, attachments=tuple(attachment for attachment, _ in new),
                       images=images, images_read_ms=read_ms)

    async def stream(self, user_id: str, deadline_ms: int | None) -> Lease | None:
        """A stream that follows an answer (a resume): counted and leased like a turn."""
        return await self._limits.admit(user_id, deadline_ms)

    async def _release_claim(self, chat_session_id: str, client_message_id: str, message_id: str) -> None:
        try:
            await self._store.release_claim(chat_session_id, client_message_id, message_id)
        except StoreError:
            telemetry.logger.warning("a refused request's claim could not be released; it is taken over once stale")


def _regeneration(conversation: Conversation) -> tuple[Conversation, Regeneration]:
    """What a regenerate answers: the last user message, with the conversation before it, and the answer it
    replaces. Refused when there is none, or when the last answer is still being generated."""
    history = conversation.history
    last = next((index for index in range(len(history) - 1, -1, -1) if history[index].role == "user"), None)
    if last is None:
        raise RequestRejected(409, NOTHING_TO_REGENERATE, "this session has no message to answer again")
    answers = history[last + 1:]
    if any(answer.status in LIVE for answer in answers):
        raise RequestRejected(409, ANSWER_IN_PROGRESS, "the last answer is still being generated: stop it, or wait "
                              "for it, before asking for another")
    current = [answer for answer in answers if answer.superseded_by is None]
    replaces = current[-1].message_id if current else None
    return Conversation(conversation.session, history[:last]), Regeneration(history[last], replaces)


def _raise_failure(outcome: Any) -> None:
    if isinstance(outcome, BaseException):
        raise outcome


def _nothing() -> Awaitable[None]:
    async def nothing() -> None:
        return None

    return nothing()
