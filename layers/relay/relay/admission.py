"""Admission of a chat request: whether it may start a turn, join one, or must be refused.

One round trip decides it: the session and its history are read while the user's limits are counted, their
spending read against any token budget and, with a ``clientMessageId``, the id is claimed (a conditional
transaction that also checks the session is the caller's). The outcome is typed: a ``NewTurn`` (its conversation,
provider and lease; for a regenerate, the message answered again), or a ``Rejoin`` of the turn a first attempt of
the same request started. A refusal raises ``RequestRejected`` (or ``StoreError``, a 503) after giving back
whatever the round trip acquired: the stream lease, and the claim, so that the client's retry is a new turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import anyio

from relay import telemetry, tracing
from relay.errors import (
    ANSWER_IN_PROGRESS,
    CLIENT_MESSAGE_CONFLICT,
    NOTHING_TO_REGENERATE,
    PROVIDER_NOT_CONFIGURED,
    SESSION_NOT_FOUND,
    RequestRejected,
    StoreError,
)
from relay.limits import Lease, Limits
from relay.providers.base import ChatProvider
from relay.providers.registry import ProviderRegistry
from relay.records import LIVE, Conversation
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


@dataclass(frozen=True, slots=True)
class Rejoin:
    message_ids: tuple[str, str]  # the first attempt's (user message, answer)
    lease: Lease | None


def session_not_found() -> RequestRejected:
    return RequestRejected(404, SESSION_NOT_FOUND, "no chat session with this id")


class Admission:
    def __init__(self, store: ChatStore, limits: Limits, usage: UsageLedger, providers: ProviderRegistry,
                 history_limit: int) -> None:
        self._store = store
        self._limits = limits
        self._usage = usage
        self._providers = providers
        self._history_limit = history_limit

    async def turn(self, user_id: str, chat_session_id: str, content: str | None, client_message_id: str | None,
                   deadline_ms: int | None) -> NewTurn | Rejoin:
        """``content`` is the new message; None asks for a regenerate of the last answer."""
        message_ids = new_message_ids()
        # A regenerate's claim remembers no content (none can be empty): the id then names a regenerate.
        claim = (self._store.claim_client_message(chat_session_id, user_id, client_message_id, message_ids,
                                                  content or "")
                 if client_message_id else _nothing())
        read_started = time.perf_counter()
        with tracing.subsegment("store.load_conversation"):
            loaded, admitted, claimed, spending = await asyncio.gather(
                self._store.load_conversation(chat_session_id, self._history_limit, user_id),
                self._limits.admit(user_id, deadline_ms), claim, self._usage.check(user_id), return_exceptions=True)
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
            fallbacks = [(candidate, model) for name, model in loaded.session.fallbacks
                         if (candidate := self._providers.get(name)) is not None]
            if content is not None:
                return NewTurn(loaded, provider, fallbacks, message_ids, lease, store_read_ms)
            before, regeneration = _regeneration(loaded)
            return NewTurn(before, provider, fallbacks, message_ids, lease, store_read_ms, regeneration)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if lease is not None:
                    await lease.release()
                if claimed_here:
                    assert client_message_id is not None
                    await self._release_claim(chat_session_id, client_message_id, message_ids[1])
            raise

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
