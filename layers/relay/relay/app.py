"""The HTTP layer: routes, request validation, and the streamed response.

Every error before streaming starts is ``{"error": {"code", "message"}}`` with a 4xx status, and writes nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from ulid import ULID

from relay import ai_sdk, config, json_input, sse, tracing
from relay.admission import Admission, NewTurn, session_not_found
from relay.auth import Authenticator, Unauthorized, authenticator_from_environment
from relay.config import Settings
from relay.connections import Connections
from relay.context import Invocation
from relay.errors import STORE_UNAVAILABLE, RequestRejected, StoreError
from relay.events import Done, Failed, Reasoning, Started, Tokens, TurnEvent
from relay.limits import Limits, held
from relay.providers.registry import ProviderRegistry
from relay.reasoning import reasoning_option
from relay.records import LIVE, ChatSession, SessionSummary, is_id, now_iso
from relay.resume import attach, follow_message
from relay.store import ChatStore, InvalidCursor
from relay.titles import ModelTitles
from relay.turn import Connection, TurnSettings, relay_turn
from relay.usage import UsageLedger

WHOLE_NUMBER_PATTERN = re.compile(r"[0-9]{1,9}")  # under a billion: an offset, a body size, a page size
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Where a resume starts: a token event's id (the text's offset) or a reasoning event's ("<text offset>:<reasoning
# offset>"), as Last-Event-ID, or the same as ?offset=&reasoningOffset=.
RESUME_POSITION = re.compile(r"([0-9]{1,9})(?::([0-9]{1,9}))?")  # ASCII digits, matched whole
# A client that takes longer than this to accept a chunk is treated as gone; its answer is still completed and stored.
SEND_TIMEOUT_SECONDS = 10.0
# The same list as template.yaml's FunctionUrlConfig Cors AllowHeaders (a test keeps them equal). Behind CloudFront
# with Origin Access Control a browser also sends x-amz-content-sha256: the hash OAC signs its body by.
CORS_ALLOW_HEADERS = ("content-type", "authorization", "accept", "last-event-id", "x-user-authorization",
                      "x-amz-content-sha256")
CORS_ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE")  # template.yaml's AllowMethods too (a test keeps them equal)
SESSION_FIELDS = ("title", "system", "provider", "model", "fallbacks", "reasoning")  # what POST and PATCH may set


AuthenticatorFactory = Callable[[httpx.AsyncClient], Authenticator]


def create_app(
    settings: Settings | None = None,
    store: ChatStore | None = None,
    authenticator: AuthenticatorFactory = authenticator_from_environment,
) -> Starlette:
    settings = settings or Settings.from_environment()
    store = store or ChatStore(settings.table_name, ttl_days=settings.message_ttl_days)
    tracing.start()
    # One client per process, so connections are reused (and its TLS context, ~20 ms to create, is made once).
    connections = Connections(read_timeout=settings.provider_read_timeout_seconds,
                              warm=settings.provider_preconnect)
    http = connections.http
    # Checked now, not at the first request: a deployment with unsafe auth settings must not become ready.
    auth = authenticator(http)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with http:
            app.state.connections = connections
            app.state.providers = providers = ProviderRegistry(settings, http)
            app.state.auth = auth
            app.state.admission = Admission(store, app.state.limits, app.state.usage, providers,
                                            settings.history_max_messages)
            app.state.turn_settings = TurnSettings.from_settings(settings, providers.metric_model, app.state.usage,
                                                                 _model_titles(settings, providers))
            # Only now: its thread competing with start-up for the interpreter lock made readiness ~85 ms later.
            asyncio.get_running_loop().call_soon(store.connect)
            # Likewise the providers' connections, which the first request's store read then overlaps.
            asyncio.get_running_loop().call_soon(connections.warm, providers.origins)
            yield

    middleware = []
    if settings.cors_allow_origins and not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        # On Lambda the function URL answers CORS from the same allowlist (template.yaml); elsewhere the app does.
        middleware.append(cors_middleware(settings.cors_allow_origins))

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/providers", list_providers, methods=["GET"]),
            Route("/sessions", create_session, methods=["POST"]),
            Route("/sessions", list_sessions, methods=["GET"]),
            Route("/sessions", delete_all_sessions, methods=["DELETE"]),
            Route("/sessions/{chatSessionId}", update_session, methods=["PATCH"]),
            Route("/sessions/{chatSessionId}", delete_session, methods=["DELETE"]),
            Route("/sessions/{chatSessionId}/messages", list_messages, methods=["GET"]),
            Route("/chat/stream", chat_stream, methods=["POST"]),
            Route("/sessions/{chatSessionId}/messages/{messageId}/cancel", cancel_message, methods=["POST"]),
            Route("/sessions/{chatSessionId}/messages/{messageId}/stream", resume_message, methods=["GET"]),
            Route("/usage", get_usage, methods=["GET"]),
        ],
        exception_handlers={RequestRejected: _rejected, Unauthorized: _unauthorized, HTTPException: _http_error,
                            StoreError: _store_unavailable, Exception: _internal_error},
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.limits = Limits(store.dynamodb, settings)
    app.state.usage = UsageLedger(store.dynamodb, settings)
    return app


def _model_titles(settings: Settings, providers: ProviderRegistry) -> ModelTitles | None:
    if settings.title_model is None:
        return None
    name, model = settings.title_model
    provider = providers.get(name)
    if provider is None:  # a known name (config.py checks), but not set up here: simulated without its server
        from relay.telemetry import logger

        logger.warning("TITLE_MODEL's provider is not set up here: sessions keep their first message's title")
        return None
    return ModelTitles(provider, model)


def cors_middleware(allow_origins: Sequence[str]) -> Middleware:
    """CORS as the function URL answers it (template.yaml): an allowlist, no credentials, preflights kept 10 min."""
    return Middleware(CORSMiddleware, allow_origins=list(allow_origins), allow_methods=list(CORS_ALLOW_METHODS),
                      allow_headers=list(CORS_ALLOW_HEADERS), allow_credentials=False, max_age=600)


async def authenticate(request: Request) -> str:
    return str(await request.app.state.auth.user_id(request.headers))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_providers(request: Request) -> Response:
    await authenticate(request)
    return JSONResponse({"providers": await request.app.state.providers.configured()})


async def create_session(request: Request) -> Response:
    user_id = await authenticate(request)
    body = await read_json_object(request)
    new = ChatSession(chat_session_id=str(ULID()), provider="", model="", created_at=now_iso(), owner_id=user_id)
    session = validated_session(body, request.app.state.providers, new)
    await request.app.state.store.create_session(session)
    return JSONResponse({"chatSessionId": session.chat_session_id}, status_code=201)


def validated_session(body: dict[str, Any], providers: ProviderRegistry, current: ChatSession) -> ChatSession:
    """``current`` with the settings ``body`` gives it, checked: the one place a session's settings are validated,
    for a new session (``current`` has no provider or model yet: both are required) and for PATCH (any of
    SESSION_FIELDS; absent or null leaves one as it is, an empty list of fallbacks removes them)."""
    if current.provider and not any(body.get(name) is not None for name in SESSION_FIELDS):
        raise RequestRejected(422, "validation_error", f"give at least one of: {', '.join(SESSION_FIELDS)}")
    provider = optional_string(body, "provider", config.MAX_MODEL_CHARS)
    model = optional_string(body, "model", config.MAX_MODEL_CHARS)
    changes: dict[str, Any] = {}
    if provider is not None or model is not None or not current.provider:
        provider = provider or current.provider
        if not provider:
            raise RequestRejected(422, "validation_error", "provider is required")
        if providers.get(provider) is None:
            raise RequestRejected(422, "validation_error", f"provider must be one of: {', '.join(providers.names)}")
        model = model or current.model
        if not model:
            raise RequestRejected(422, "validation_error", "model is required")
        changes.update(provider=provider, model=_allowed_model(providers, provider, model))
    for name, limit in (("title", config.MAX_TITLE_CHARS), ("system", config.MAX_SYSTEM_CHARS)):
        if (value := optional_string(body, name, limit)) is not None:
            changes[name] = value
    if body.get("fallbacks") is not None or not current.provider:
        changes["fallbacks"] = _fallbacks(body, providers)
    if body.get("reasoning") is not None:
        changes["reasoning"] = reasoning_option(body["reasoning"])
    return replace(current, **changes)


def _fallbacks(body: dict[str, Any], providers: ProviderRegistry) -> tuple[tuple[str, str], ...]:
    value = body.get("fallbacks")
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > config.MAX_FALLBACKS:
        raise RequestRejected(422, "validation_error",
                              f"fallbacks must be a list of at most {config.MAX_FALLBACKS} {{provider, model}}")
    pairs = []
    for entry in value:
        if not isinstance(entry, dict):
            raise RequestRejected(422, "validation_error", "each fallback must be an object {provider, model}")
        provider = require_string(entry, "provider", config.MAX_MODEL_CHARS)
        if providers.get(provider) is None:
            raise RequestRejected(422, "validation_error", f"fallback provider must be one of: "
                                  f"{', '.join(providers.names)}")
        pairs.append((provider, _allowed_model(providers, provider,
                                               require_string(entry, "model", config.MAX_MODEL_CHARS))))
    return tuple(pairs)


def _allowed_model(providers: ProviderRegistry, provider: str, model: str) -> str:
    """Only the models this deployment offers (GET /providers): a client must not pick what the operator did not."""
    if not providers.allows(provider, model):
        offered = ", ".join(providers.offered(provider))
        raise RequestRejected(422, "model_not_offered", f"{provider} offers these models here: {offered}")
    return model


async def list_messages(request: Request) -> Response:
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    store = request.app.state.store
    messages = await store.list_messages(chat_session_id, user_id) if is_id(chat_session_id) else None
    if messages is None:
        raise RequestRejected(404, "session_not_found", "no chat session with this id")
    return JSONResponse({"messages": [message.to_json() for message in messages]})


async def list_sessions(request: Request) -> Response:
    """The caller's conversations, most recently active first, a page at a time (``?limit=``, ``?cursor=``)."""
    user_id = await authenticate(request)
    limit = _number_in(request.query_params.get("limit"), "limit", config.DEFAULT_SESSIONS_PAGE, 1,
                          config.MAX_SESSIONS_PAGE)
    try:
        page = await request.app.state.store.list_sessions(user_id, limit, request.query_params.get("cursor"))
    except InvalidCursor as exc:
        raise RequestRejected(422, "validation_error", str(exc)) from None
    listed: dict[str, Any] = {"sessions": [session.to_json() for session in page.sessions]}
    if page.next_cursor is not None:
        listed["nextCursor"] = page.next_cursor
    return JSONResponse(listed)


async def update_session(request: Request) -> Response:
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    body = await read_json_object(request)
    store = request.app.state.store
    current = await store.get_session(chat_session_id, user_id) if is_id(chat_session_id) else None
    if current is None:
        raise session_not_found()
    updated = await store.update_session(validated_session(body, request.app.state.providers, current))
    if updated is None:  # deleted since it was read
        raise session_not_found()
    return JSONResponse(_session_json(*updated))


def _session_json(session: ChatSession, summary: SessionSummary) -> dict[str, Any]:
    return {**summary.to_json(), "system": session.system,
            "fallbacks": [{"provider": provider, "model": model} for provider, model in session.fallbacks]}


async def delete_session(request: Request) -> Response:
    """Erase a conversation and everything under it; a turn still streaming into it stops at its next checkpoint."""
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    if not (is_id(chat_session_id) and await request.app.state.store.delete_session(chat_session_id, user_id)):
        raise session_not_found()
    return Response(status_code=204)


async def delete_all_sessions(request: Request) -> Response:
    """Erase all of the caller's conversations: 204 when done, 202 when the function's time ran out first (the
    request, sent again, goes on where this one stopped)."""
    invocation = Invocation.from_headers(request.headers)
    user_id = await authenticate(request)
    settings = request.app.state.settings
    deadline = (invocation.deadline_ms / 1000 if invocation.deadline_ms
                else time.time() + settings.function_timeout_seconds)
    if await request.app.state.store.delete_sessions_of(user_id, until=deadline - settings.deadline_margin_seconds):
        return Response(status_code=204)
    return JSONResponse({"status": "incomplete", "message": "some conversations are not erased yet: send this "
                                                            "request again to erase the rest"}, status_code=202)


async def get_usage(request: Request) -> Response:
    """What the caller has spent this UTC day and month, and the limits that apply to them."""
    user_id = await authenticate(request)
    state = request.app.state
    spent = await state.usage.read(user_id)
    limits = {"tokensPerDay": state.usage.per_day or None, "tokensPerMonth": state.usage.per_month or None,
              "requestsPerMinute": state.limits.per_minute or None, "concurrentStreams": state.limits.streams or None}
    return JSONResponse({"day": spent.day.to_json(), "month": spent.month.to_json(), "limits": limits})


async def cancel_message(request: Request) -> Response:
    """Stop an answer on purpose: the run generating it notices at its next checkpoint (about a second), closes the
    upstream request and stores the text so far as interrupted."""
    user_id = await authenticate(request)
    chat_session_id, message_id = request.path_params["chatSessionId"], request.path_params["messageId"]
    store = request.app.state.store
    session = await store.load_conversation(chat_session_id, 0, user_id) if is_id(chat_session_id) else None
    if session is None or not is_id(message_id):
        raise RequestRejected(404, "message_not_found", "no such message in a session of yours")
    if not await store.request_cancel(chat_session_id, message_id):
        raise RequestRejected(409, "not_streaming", "this message is not being generated (it has ended, or never was)")
    return JSONResponse({"messageId": message_id, "status": "cancelling"}, status_code=202)


async def resume_message(request: Request) -> Response:
    """Reconnect to an answer from a character offset (``Last-Event-ID`` or ``?offset=``): the stored text from
    there, then, while it is still being generated, the rest as it is checkpointed, then ``done`` or ``error``.
    A resume is a stream like any other: it counts against the user's limits."""
    invocation = Invocation.from_headers(request.headers)
    user_id = await authenticate(request)
    chat_session_id, message_id = request.path_params["chatSessionId"], request.path_params["messageId"]
    offset, reasoning_offset = _resume_position(request)
    store = request.app.state.store
    owned = await store.load_conversation(chat_session_id, 0, user_id) if is_id(chat_session_id) else None
    message = await store.get_message(chat_session_id, message_id) if owned and is_id(message_id) else None
    if message is None or message.role != "ai":
        raise RequestRejected(404, "message_not_found", "no such answer in a session of yours")
    if message.status not in LIVE:  # live: the client may be ahead of a checkpoint
        for name, at, stored in (("offset", offset, message.content),
                                 ("reasoning offset", reasoning_offset or 0, message.reasoning)):
            if at > len(stored):
                raise RequestRejected(422, "validation_error", f"{name} {at} is beyond the {len(stored)} characters "
                                                               "stored")
    lease = await request.app.state.admission.stream(user_id, invocation.deadline_ms)
    events = held(follow_message(store, chat_session_id, message, offset, reasoning_offset=reasoning_offset), lease)
    return EventStreamResponse(_as_sse(events, offset, reasoning_offset or 0), "text/event-stream; charset=utf-8",
                               Connection(), config.ON_DISCONNECT_CANCEL)


def _resume_position(request: Request) -> tuple[int, int | None]:
    """The answer's text offset to resume from, and its reasoning's: both from a reasoning event's id (or
    ``reasoningOffset``); from a token's id, none of the reasoning unless the text starts at 0 (None), since every
    provider sends its reasoning before the answer's text, so a client that has had text has had the reasoning."""
    query = request.query_params
    offset, reasoning_offset = query.get("offset"), query.get("reasoningOffset")
    if offset or reasoning_offset:
        raw = (offset or "0") + (f":{reasoning_offset}" if reasoning_offset else "")
    else:
        raw = request.headers.get("last-event-id") or "0"
    position = RESUME_POSITION.fullmatch(raw)
    if position is None:
        raise RequestRejected(422, "validation_error", "offset (or Last-Event-ID) must be a whole number, or a "
                                                       "reasoning event's id")
    text_at = int(position[1])
    if position[2] is not None:
        return text_at, int(position[2])
    return text_at, 0 if text_at == 0 else None


async def chat_stream(request: Request) -> Response:
    invocation = Invocation.from_headers(request.headers, received_at=time.perf_counter())
    tracing.bind_invocation(invocation.trace_id)
    user_id = await authenticate(request)
    encoding = _stream_encoding(request)
    body = await read_json_object(request)
    if encoding.encode is ai_sdk.ui_message_stream:
        body = dict(zip(("chatSessionId", "content", "clientMessageId"), ai_sdk.new_message(body), strict=True))
    chat_session_id = require_string(body, "chatSessionId", 64)
    content = _message_content(body)
    client_message_id = optional_string(body, "clientMessageId", 64)
    if client_message_id is not None and not CLIENT_ID_PATTERN.fullmatch(client_message_id):
        raise RequestRejected(422, "validation_error", "clientMessageId may hold letters, digits, '-', '_', '.', ':'")
    if not is_id(chat_session_id):
        raise session_not_found()
    state = request.app.state
    state.connections.keep_warm()  # a provider connection gone while the process was frozen reopens during the read
    admitted = await state.admission.turn(user_id, chat_session_id, content, client_message_id,
                                          invocation.deadline_ms)
    if not isinstance(admitted, NewTurn):
        # A retry of a request already under way or done: join its turn, no second message, no second call.
        events = held(attach(state.store, chat_session_id, admitted.message_ids), admitted.lease)
        return encoding.response(events, Connection(), config.ON_DISCONNECT_CANCEL)
    connection = Connection()
    regeneration = admitted.regeneration
    turn = relay_turn(admitted.conversation, regeneration.user_message.content if regeneration else content or "",
                      provider=admitted.provider, store=state.store, invocation=invocation,
                      settings=state.turn_settings, connection=connection, fallbacks=admitted.fallbacks,
                      message_ids=admitted.message_ids, client_message_id=client_message_id,
                      store_read_ms=admitted.store_read_ms, regeneration=regeneration)
    return encoding.response(held(turn, admitted.lease), connection, state.settings.on_client_disconnect)


def _message_content(body: dict[str, Any]) -> str | None:
    """The new message; None for ``"regenerate": true``, which answers the last one again and takes none."""
    regenerate = body.get("regenerate", False)
    if not isinstance(regenerate, bool):
        raise RequestRejected(422, "validation_error", "regenerate must be true or false")
    if not regenerate:
        return require_string(body, "content", config.MAX_CONTENT_CHARS)
    if body.get("content") is not None:
        raise RequestRejected(422, "validation_error", "a regenerate answers the last message again: it takes no "
                                                       "content")
    return None


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a turn's events go on the wire."""

    encode: Callable[[AsyncGenerator[TurnEvent, None]], AsyncGenerator[bytes, None]]
    media_type: str = "text/event-stream; charset=utf-8"
    headers: dict[str, str] | None = None

    def response(self, events: AsyncGenerator[TurnEvent, None], connection: Connection,
                 on_disconnect: str) -> EventStreamResponse:
        return EventStreamResponse(self.encode(events), self.media_type, connection, on_disconnect, self.headers)


def _stream_encoding(request: Request) -> Encoding:
    """Our SSE events by default, plain text for ``Accept: text/plain``, the AI SDK's UI message stream for
    ``?protocol=ai-sdk``."""
    protocol = request.query_params.get("protocol")
    if protocol == ai_sdk.PROTOCOL:
        return Encoding(ai_sdk.ui_message_stream, headers=ai_sdk.HEADERS)
    if protocol is not None:
        raise RequestRejected(422, "validation_error", f"protocol must be {ai_sdk.PROTOCOL!r} or absent")
    if _wants_plain_text(request):
        return Encoding(_as_plain_text, "text/plain; charset=utf-8")
    return Encoding(_as_sse)


class EventStreamResponse(StreamingResponse):
    """A streaming response whose source, the relay turn, runs to its end even when the client goes away (most
    disconnects are network blips, and the answer is then stored whole), unless ``on_disconnect`` is "cancel".
    A client that stops reading without going away is treated as gone after ``SEND_TIMEOUT_SECONDS``, so it cannot
    hold the turn up either. Either way the source is closed deterministically: Starlette would leave a generator
    interrupted at a ``yield`` to the garbage collector, and the turn must store its answer instead.

    Chunks are sent from the loop that reads the source, with no queue or task between them: a hand-over through a
    memory stream cost ~0.65 ms of every first token (make bench, p50)."""

    body_iterator: AsyncGenerator[bytes, None]

    def __init__(self, content: AsyncGenerator[bytes, None], media_type: str, connection: Connection,
                 on_disconnect: str = config.ON_DISCONNECT_FINISH, headers: dict[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers={**STREAM_HEADERS, **(headers or {})})
        self.connection = connection
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as watching:
                watching.start_soon(self._watch, receive, watching.cancel_scope)
                await self._send(send, {"type": "http.response.start", "status": self.status_code,
                                        "headers": self.raw_headers})
                async for chunk in self.body_iterator:
                    await self._send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
                await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
                watching.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()

    async def _send(self, send: Send, message: Message) -> None:
        if self.connection.gone:
            return  # the turn goes on without its client
        with anyio.move_on_after(SEND_TIMEOUT_SECONDS) as waiting:
            try:
                await send(message)
            except OSError:
                self.connection.gone = True
        if waiting.cancelled_caught:
            self.connection.gone = True

    async def _watch(self, receive: Receive, stream: anyio.CancelScope) -> None:
        await self.listen_for_disconnect(receive)
        self.connection.gone = True
        if self.on_disconnect == config.ON_DISCONNECT_CANCEL:
            stream.cancel()


async def _as_sse(events: AsyncGenerator[TurnEvent, None], offset: int = 0,
                  reasoning_offset: int = 0) -> AsyncGenerator[bytes, None]:
    """Our SSE events. A token's id is the text's offset after it (as it always was); a reasoning event's is
    ``<text offset>:<reasoning offset>``, so the id a client last saw, either kind, resumes both."""
    try:
        async for event in events:
            match event:
                case Tokens(texts):
                    frames = []
                    for text in texts:
                        offset += len(text)
                        frames.append(sse.token_event(text, offset))
                    yield b"".join(frames)
                case Reasoning(texts):
                    frames = []
                    for text in texts:
                        reasoning_offset += len(text)
                        frames.append(sse.reasoning_event(text, offset, reasoning_offset))
                    yield b"".join(frames)
                case Started():
                    yield sse.format_event("start", {"userMessageId": event.user_message_id,
                                                     "messageId": event.message_id})
                case Done():
                    done = {"messageId": event.message_id, "finishReason": event.finish_reason,
                            "usage": event.usage(), "ttftMs": event.ttft_ms, "tokensPerSecond": event.tokens_per_second}
                    if event.time_to_first_reasoning_ms is not None:
                        done["timeToFirstReasoningMs"] = event.time_to_first_reasoning_ms
                    yield sse.format_event("done", done)
                case Failed(code, message):
                    yield sse.format_event("error", {"code": code, "message": message})
    finally:
        await events.aclose()


async def _as_plain_text(events: AsyncGenerator[TurnEvent, None]) -> AsyncGenerator[bytes, None]:
    try:
        async for event in events:
            if isinstance(event, Tokens):
                yield "".join(event.texts).encode()
            elif isinstance(event, Failed):
                # Plain text has no event channel: the failure is appended where a reader will see it.
                yield f"\n\n[error {event.code}: {event.message}]\n".encode()
    finally:
        await events.aclose()


def _wants_plain_text(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/plain" in accept and "text/event-stream" not in accept


async def read_json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise RequestRejected(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
    declared = _whole_number(request.headers.get("content-length", ""))
    if declared is not None and declared > config.MAX_BODY_BYTES:
        raise _too_large()  # any other length, odd or longer, is caught by counting the bytes as they come
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > config.MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    try:
        body = json_input.loads(b"".join(chunks))
    except json_input.TooDeep as exc:
        raise RequestRejected(400, "json_too_deep", f"the body must not nest deeper than {exc.max_depth} levels") \
            from None
    except ValueError:  # not JSON, not UTF-8, or an integer over Python's 4,300 digits
        raise RequestRejected(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestRejected(422, "validation_error", "the body must be a JSON object")
    return body


def require_string(body: dict[str, Any], name: str, max_chars: int) -> str:
    value = optional_string(body, name, max_chars)
    if value is None:
        raise RequestRejected(422, "validation_error", f"{name} is required")
    return value


def optional_string(body: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestRejected(422, "validation_error", f"{name} must be a string")
    if not value.strip():
        raise RequestRejected(422, "validation_error", f"{name} must not be empty")
    if len(value) > max_chars:
        raise RequestRejected(422, "validation_error", f"{name} must be at most {max_chars} characters")
    try:
        value.encode()
    except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); UTF-8 and DynamoDB do not
        raise RequestRejected(422, "validation_error", f"{name} must be valid Unicode text") from None
    return value


def _whole_number(raw: str) -> int | None:
    """ASCII digits only: ``str.isdigit`` also takes "²", which int() refuses, and "١٢", which int() reads."""
    return int(raw) if WHOLE_NUMBER_PATTERN.fullmatch(raw) else None


def _number_in(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter's whole number within bounds, ``default`` when absent; a 422 otherwise."""
    if raw is None:
        return default
    number = _whole_number(raw)
    if number is None or not low <= number <= high:
        raise RequestRejected(422, "validation_error", f"{name} must be a whole number from {low} to {high}")
    return number


def _too_large() -> RequestRejected:
    return RequestRejected(413, "payload_too_large", f"the body must be at most {config.MAX_BODY_BYTES} bytes")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    return _error(exc.status, exc.code, exc.message, exc.headers)


async def _unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthorized)
    return _error(401, "unauthorized", exc.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    from relay.telemetry import logger

    logger.warning("the store is unavailable", exc_info=exc)
    return _error(503, STORE_UNAVAILABLE, "the relay's storage is not answering; try again shortly",
                  {"Retry-After": str(config.STORE_RETRY_AFTER_SECONDS)})


async def _internal_error(request: Request, exc: Exception) -> Response:
    from relay.telemetry import logger

    logger.exception("unhandled error")
    return _error(500, "internal_error", "the relay failed; the error is logged")
