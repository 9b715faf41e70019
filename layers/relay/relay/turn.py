"""One chat turn: relay a provider's answer to the client while the store keeps both sides of the conversation.

The caller has already loaded the session and its history (the one read before the provider call). Then:
the provider request leaves at once while the user message and a ``streaming`` placeholder are written alongside;
each text delta goes to the client as it arrives; at the end the AI message is stored with its terminal status
and metadata, the metrics are flushed, and only then does the client get ``Done`` or ``Failed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from ulid import ULID

from relay import telemetry
from relay.context import Invocation
from relay.errors import PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, TextDelta, Usage
from relay.providers import ChatMessage, ChatProvider, ChatRequest
from relay.store import (
    COMPLETE,
    ERROR,
    INCOMPLETE,
    INTERRUPTED,
    STREAMING,
    ChatStore,
    Conversation,
    StoredMessage,
    now_iso,
)

STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True, slots=True)
class Started:
    user_message_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Token:
    text: str


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


TurnEvent = Started | Token | Done | Failed


async def relay_turn(
    conversation: Conversation,
    content: str,
    *,
    provider: ChatProvider,
    store: ChatStore,
    invocation: Invocation,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncIterator[TurnEvent]:
    session = conversation.session
    user_message, placeholder = _new_turn_messages(content)
    messages = [*_provider_history(conversation), ChatMessage("user", content)]
    request = ChatRequest(session.model, messages, session.system)
    log = {"request_id": invocation.request_id, "chat_session_id": session.chat_session_id,
           "message_id": placeholder.message_id, "provider": session.provider, "model": session.model}
    telemetry.logger.info("stream started", extra=log)

    saving = asyncio.create_task(store.put_messages(session.chat_session_id, user_message, placeholder))
    stream = provider.stream(request)
    parts: list[str] = []
    first_token_at = last_token_at = None
    usage: Usage | None = None
    finish_reason: str | None = None
    status, error, disconnected = COMPLETE, None, False
    cold_start = telemetry.take_cold_start()

    yield Started(user_message.message_id, placeholder.message_id)
    relay_overhead_ms = _ms(clock(), invocation)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                last_token_at = clock()
                if first_token_at is None:
                    first_token_at = last_token_at
                    telemetry.logger.info("first token", extra={**log, "ttft_ms": _ms(first_token_at, invocation)})
                parts.append(event.text)
                yield Token(event.text)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Finish):
                finish_reason = event.reason
    except ProviderError as exc:
        status, error = (INCOMPLETE if exc.code == PROVIDER_INCOMPLETE else ERROR), exc
    except BaseException:  # the client went away: cancelled, or closed at a yield
        status, disconnected = INTERRUPTED, True
        raise
    finally:
        # Runs even when the client is gone: the answer so far is stored whatever happens.
        with anyio.CancelScope(shield=True):
            await stream.aclose()
            output_tokens = usage.output_tokens if usage else len(parts)
            ttft_ms = _ms(first_token_at, invocation) if first_token_at is not None else None
            tokens_per_second = _rate(output_tokens, first_token_at, last_token_at)
            metadata: dict[str, Any] = {
                "provider": session.provider,
                "model": session.model,
                "finishReason": finish_reason,
                "usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens} if usage else None,
                "ttftMs": ttft_ms,
                "tokensPerSecond": tokens_per_second,
                "error": {"code": error.code, "message": error.message} if error else None,
            }
            reply = StoredMessage(placeholder.message_id, "ai", "".join(parts), status, placeholder.created_at,
                                  {key: value for key, value in metadata.items() if value is not None})
            store_failure = await _store_reply(store, session.chat_session_id, saving, user_message, reply)
            report = telemetry.TurnReport(
                provider=session.provider, model=session.model, status=status,
                duration_ms=(clock() - invocation.received_at) * 1000, ttft_ms=ttft_ms,
                tokens_per_second=tokens_per_second, input_tokens=usage.input_tokens if usage else None,
                output_tokens=output_tokens, error_code=error.code if error else store_failure,
                client_disconnected=disconnected, relay_overhead_ms=relay_overhead_ms, cold_start=cold_start,
            )
            telemetry.publish_turn_metrics(report)
            telemetry.logger.info("stream ended", extra={
                **log, "status": status, "error_code": report.error_code, "ttft_ms": ttft_ms,
                "tokens_per_second": tokens_per_second, "duration_ms": round(report.duration_ms, 1),
                "output_tokens": output_tokens, "client_disconnected": disconnected})

    if error is not None:
        yield Failed(error.code, error.message)
    elif store_failure is not None:
        yield Failed(store_failure, "the answer could not be stored")
    else:
        yield Done(placeholder.message_id, finish_reason, usage.input_tokens if usage else None,
                   output_tokens, ttft_ms, tokens_per_second)


async def _store_reply(
    store: ChatStore, chat_session_id: str, saving: asyncio.Task[None], user: StoredMessage, reply: StoredMessage
) -> str | None:
    """Write the final AI message (and the user message, if the first write failed); the error code, if any."""
    messages = [reply]
    try:
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


def _new_turn_messages(content: str) -> tuple[StoredMessage, StoredMessage]:
    user_id = ULID()
    # The reply's id is the user's plus one: same millisecond, and it always sorts right after.
    reply_id = ULID.from_int(int(user_id) + 1)
    created_at = now_iso()
    return (
        StoredMessage(str(user_id), "user", content, COMPLETE, created_at),
        StoredMessage(str(reply_id), "ai", "", STREAMING, created_at),
    )


def _provider_history(conversation: Conversation) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for message in conversation.history:
        if message.role == "user":
            history.append(ChatMessage("user", message.content))
        elif message.status == COMPLETE and message.content:
            history.append(ChatMessage("assistant", message.content))
    return history


def _ms(at: float, invocation: Invocation) -> float:
    return round((at - invocation.received_at) * 1000, 3)


def _rate(tokens: int, first: float | None, last: float | None) -> float | None:
    if first is None or last is None or last <= first:
        return None
    return round(tokens / (last - first), 3)
