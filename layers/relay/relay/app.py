"""The HTTP layer: routes, what each request means, and the streamed response.

Bodies are read and checked against the API's schema by ``bodies``; what a body means beyond its shape (a provider
configured here, a model it offers, a session of the caller's) is checked here. Every error before streaming starts
is ``{"error": {"code", "message"}}`` with a 4xx status, and writes nothing. The API is described in relay/api.py
and published at ``GET /openapi.json``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from relay import bodies, config, encodings, tracing
from relay.admission import Admission, NewTurn, session_not_found
from relay.attachments import AttachmentStore
from relay.auth import Authenticator, Unauthorized, authenticator_from_environment
from relay.config import Settings
from relay.connections import Connections
from relay.context import Invocation
from relay.encodings import Encoding
from relay.errors import (
    ATTACHMENT_NOT_FOUND,
    ATTACHMENT_TOO_LARGE,
    ATTACHMENTS_NOT_CONFIGURED,
    HTTP_ERROR,
    INTERNAL_ERROR,
    MESSAGE_NOT_FOUND,
    METHOD_NOT_ALLOWED,
    MODEL_NOT_OFFERED,
    NOT_FOUND,
    NOT_STREAMING,
    STORE_UNAVAILABLE,
    UNAUTHORIZED,
    RequestRejected,
    StoreError,
)
from relay.events import Done, Failed, TurnEvent
from relay.limits import Limits, held
from relay.providers.registry import ProviderRegistry
from relay.reasoning import ReasoningOption
from relay.records import LIVE, ChatSession, SessionSummary, is_id, now_iso
from relay.resume import attach, follow_message
from relay.store import SESSION_SETTINGS, ChatStore, InvalidCursor
from relay.titles import ModelTitles
from relay.turn import Connection, TurnSettings, relay_turn
from relay.usage import UsageLedger

if TYPE_CHECKING:
    from relay.api import ChatRequest, Fallback, SessionChanges, SessionSettings

STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
# The API's description, generated from relay/api.py by `python -m relay.openapi` (a test keeps it equal): served as
# it is, so that the function never imports pydantic to draw it.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")
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
# A page on another origin may read these from a response (template.yaml's ExposeHeaders too): Retry-After says when a
# 429 (a rate limit, a spent budget) stops, which the page tells the user.
CORS_EXPOSE_HEADERS = ("retry-after",)


AuthenticatorFactory = Callable[[httpx.AsyncClient], Authenticator]


def create_app(
    settings: Settings | None = None,
    store: ChatStore | None = None,
    authenticator: AuthenticatorFactory = authenticator_from_environment,
) -> Starlette:
    settings = settings or Settings.from_environment()
    store = store or ChatStore(settings.table_name, ttl_days=settings.message_ttl_days,
                               attachments=attachment_store(settings))
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
                                            settings.history_max_messages, max_images=settings.history_max_images,
                                            max_image_bytes=settings.history_max_image_bytes)
            app.state.turn_settings = TurnSettings.from_settings(settings, providers.metric_model, app.state.usage,
                                                                 _model_titles(settings, providers))
            # Only now: its thread competing with start-up for the interpreter lock made readiness ~85 ms later.
            asyncio.get_running_loop().call_soon(store.connect)
            # Likewise the providers' connections, which the first request's store read then overlaps.
            asyncio.get_running_loop().call_soon(connections.warm, providers.origins)
            yield

    middleware = []
    if settings.cors_allow_origins and not config.on_lambda():
        # On Lambda the function URL answers CORS from the same allowlist (template.yaml); elsewhere the app does.
        middleware.append(cors_middleware(settings.cors_allow_origins))

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_document, methods=["GET"]),
            Route("/providers", list_providers, methods=["GET"]),
            Route("/sessions", create_session, methods=["POST"]),
            Route("/sessions", list_sessions, methods=["GET"]),
            Route("/sessions", delete_all_sessions, methods=["DELETE"]),
            Route("/sessions/{chatSessionId}", update_session, methods=["PATCH"]),
            Route("/sessions/{chatSessionId}", delete_session, methods=["DELETE"]),
            Route("/sessions/{chatSessionId}/messages", list_messages, methods=["GET"]),
            Route("/sessions/{chatSessionId}/attachments", create_attachment, methods=["POST"]),
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


def attachment_store(settings: Settings) -> AttachmentStore | None:
    """The attachments bucket ATTACHMENTS_BUCKET names; None, and no image attachments, without one."""
    return AttachmentStore(settings.attachments_bucket) if settings.attachments_bucket else None


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
                      allow_headers=list(CORS_ALLOW_HEADERS), expose_headers=list(CORS_EXPOSE_HEADERS),
                      allow_credentials=False, max_age=600)


async def authenticate(request: Request) -> str:
    return str(await request.app.state.auth.user_id(request.headers))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi_document(request: Request) -> Response:
    return Response(_openapi_document(), media_type="application/json")


@functools.cache
def _openapi_document() -> bytes:
    return OPENAPI_DOCUMENT.read_bytes()


async def list_providers(request: Request) -> Response:
    await authenticate(request)
    return JSONResponse({"providers": await request.app.state.providers.configured()})


async def create_session(request: Request) -> Response:
    user_id = await authenticate(request)
    body = await bodies.session_settings(request)
    new = ChatSession(chat_session_id=str(ULID()), provider="", model="", created_at=now_iso(), owner_id=user_id)
    session = validated_session(body, request.app.state.providers, new)
    await request.app.state.store.create_session(session)
    return JSONResponse({"chatSessionId": session.chat_session_id}, status_code=201)


def validated_session(body: SessionSettings | SessionChanges, providers: ProviderRegistry,
                      current: ChatSession) -> ChatSession:
    """``current`` with the settings ``body`` gives it, checked against this deployment: for a new session
    (``current`` has no provider or model yet) and for PATCH (absent or null leaves a setting as it is; an empty
    list of fallbacks removes them). The body's shape is the schema's to check (relay/bodies.py)."""
    if current.provider and all(value is None for value in body.values()):
        raise bodies.invalid(f"give at least one of: {', '.join(SESSION_SETTINGS)}")
    changes: dict[str, Any] = {}
    provider, model = body.get("provider"), body.get("model")
    if provider is not None or model is not None or not current.provider:
        provider = provider or current.provider
        model = model or current.model
        changes.update(provider=provider, model=_allowed_model(providers, _known(providers, provider), model))
    for name in ("title", "system"):
        if (value := body.get(name)) is not None:
            changes[name] = value
    if (fallbacks := body.get("fallbacks")) is not None or not current.provider:
        changes["fallbacks"] = _fallbacks(fallbacks or [], providers)
    if (reasoning := body.get("reasoning")) is not None:
        changes["reasoning"] = ReasoningOption.from_json(reasoning)
    return replace(current, **changes)


def _fallbacks(fallbacks: list[Fallback], providers: ProviderRegistry) -> tuple[tuple[str, str], ...]:
    return tuple((_known(providers, entry["provider"], "fallback provider"),
                  _allowed_model(providers, entry["provider"], entry["model"])) for entry in fallbacks)


def _known(providers: ProviderRegistry, provider: str, what: str = "provider") -> str:
    if providers.get(provider) is None:
        raise bodies.invalid(f"{what} must be one of: {', '.join(providers.names)}")
    return provider


def _allowed_model(providers: ProviderRegistry, provider: str, model: str) -> str:
    """Only the models this deployment offers (GET /providers): a client must not pick what the operator did not."""
    if not providers.allows(provider, model):
        offered = ", ".join(providers.offered(provider))
        raise RequestRejected(422, MODEL_NOT_OFFERED, f"{provider} offers these models here: {offered}")
    return model


async def create_attachment(request: Request) -> Response:
    """A presigned upload for one image of the session's owner: the browser PUTs its bytes straight to S3, then
    names its ``attachmentId`` in ``POST /chat/stream``."""
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    body = await bodies.attachment_request(request)
    if body["size"] > config.MAX_IMAGE_BYTES:
        raise RequestRejected(422, ATTACHMENT_TOO_LARGE, f"an image may be at most {config.MAX_IMAGE_BYTES} bytes")
    attachments = request.app.state.store.attachments
    if attachments is None:
        raise RequestRejected(422, ATTACHMENTS_NOT_CONFIGURED, "this relay has no attachments bucket "
                                                               "(ATTACHMENTS_BUCKET): it takes no images")
    if not (is_id(chat_session_id) and await request.app.state.store.get_session(chat_session_id, user_id)):
        raise session_not_found()
    upload = await attachments.upload(chat_session_id, body["mediaType"], body["size"])
    return JSONResponse(upload.to_json(), status_code=201)


async def list_messages(request: Request) -> Response:
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    store = request.app.state.store
    messages = await store.list_messages(chat_session_id, user_id) if is_id(chat_session_id) else None
    if messages is None:
        raise session_not_found()
    listed = [message.to_json() for message in messages]
    images = [attachment for message in messages for attachment in message.attachments]
    if images and store.attachments is not None:  # each image with a short-lived URL to show it by
        urls = await store.attachments.view_urls(chat_session_id, images)
        for shown in listed:
            for attachment in shown.get("attachments", ()):
                attachment["url"] = urls[attachment["attachmentId"]]
    return JSONResponse({"messages": listed})


async def list_sessions(request: Request) -> Response:
    """The caller's conversations, most recently active first, a page at a time (``?limit=``, ``?cursor=``)."""
    user_id = await authenticate(request)
    limit = _number_in(request.query_params.get("limit"), "limit", config.DEFAULT_SESSIONS_PAGE, 1,
                          config.MAX_SESSIONS_PAGE)
    try:
        page = await request.app.state.store.list_sessions(user_id, limit, request.query_params.get("cursor"))
    except InvalidCursor as exc:
        raise bodies.invalid(str(exc)) from None
    listed: dict[str, Any] = {"sessions": [session.to_json() for session in page.sessions]}
    if page.next_cursor is not None:
        listed["nextCursor"] = page.next_cursor
    return JSONResponse(listed)


async def update_session(request: Request) -> Response:
    user_id = await authenticate(request)
    chat_session_id = request.path_params["chatSessionId"]
    body = await bodies.session_changes(request)
    store = request.app.state.store
    current = await store.get_session(chat_session_id, user_id) if is_id(chat_session_id) else None
    if current is None:
        raise session_not_found()
    # Only what the body names is written: a setting changed since it was read (a turn's first title, a
    # model-made one) stays. A provider and its model are checked, and so written, together.
    named = {name for name in SESSION_SETTINGS if body.get(name) is not None}
    if named & {"provider", "model"}:
        named |= {"provider", "model"}
    updated = await store.update_session(validated_session(body, request.app.state.providers, current), named)
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
        raise RequestRejected(404, MESSAGE_NOT_FOUND, "no such message in a session of yours")
    if not await store.request_cancel(chat_session_id, message_id):
        raise RequestRejected(409, NOT_STREAMING, "this message is not being generated (it has ended, or never was)")
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
        raise RequestRejected(404, MESSAGE_NOT_FOUND, "no such answer in a session of yours")
    if message.status not in LIVE:  # live: the client may be ahead of a checkpoint
        for name, at, stored in (("offset", offset, message.content),
                                 ("reasoning offset", reasoning_offset, message.reasoning)):
            if at > len(stored):
                raise bodies.invalid(f"{name} {at} is beyond the {len(stored)} characters stored")
    lease = await request.app.state.admission.stream(user_id, invocation.deadline_ms)
    events = held(follow_message(store, chat_session_id, message, offset, reasoning_offset=reasoning_offset), lease)
    return _streamed(encodings.SseEvents(offset, reasoning_offset), events, Connection(),
                     config.ON_DISCONNECT_CANCEL)


def _resume_position(request: Request) -> tuple[int, int]:
    """The answer's text offset to resume from, and its reasoning's: both from an id ``<text>:<reasoning>`` (a
    reasoning event's, or a token's once there is reasoning) or ``?offset=&reasoningOffset=``; a plain id is a text
    offset with none of the reasoning seen (a token's id before any reasoning)."""
    query = request.query_params
    offset, reasoning_offset = query.get("offset"), query.get("reasoningOffset")
    if offset or reasoning_offset:
        raw = (offset or "0") + (f":{reasoning_offset}" if reasoning_offset else "")
    else:
        raw = request.headers.get("last-event-id") or "0"
    position = RESUME_POSITION.fullmatch(raw)
    if position is None:
        raise bodies.invalid("offset (or Last-Event-ID) must be a whole number, or a reasoning event's id")
    return int(position[1]), int(position[2] or 0)


async def chat_stream(request: Request) -> Response:
    invocation = Invocation.from_headers(request.headers, received_at=time.perf_counter())
    tracing.bind_invocation(invocation.trace_id)
    user_id = await authenticate(request)
    protocol = request.query_params.get("protocol")
    encoding = encodings.for_request(protocol, request.headers.get("accept", ""))
    chat = await (bodies.ai_sdk_chat_request(request) if protocol == encodings.AI_SDK
                  else bodies.chat_request(request))
    chat_session_id, client_message_id = chat["chatSessionId"], chat.get("clientMessageId")
    attachment_ids = message_attachments(chat)
    # None: answer the last message again; "": images alone
    content = None if chat.get("regenerate") else chat.get("content") or ""
    if not is_id(chat_session_id):
        raise session_not_found()
    state = request.app.state
    state.connections.keep_warm()  # a provider connection gone while the process was frozen reopens during the read
    admitted = await state.admission.turn(user_id, chat_session_id, content, client_message_id,
                                          invocation.deadline_ms, attachment_ids)
    if not isinstance(admitted, NewTurn):
        # A retry of a request already under way or done: join its turn, no second message, no second call.
        events = held(attach(state.store, chat_session_id, admitted.message_ids), admitted.lease)
        return _streamed(encoding, events, Connection(), config.ON_DISCONNECT_CANCEL)
    connection = Connection()
    regeneration = admitted.regeneration
    # A model-made title keeps the stream open after the answer: only for a client that knows it is over by then.
    settings = state.turn_settings if encoding.done_before_close else replace(state.turn_settings, titles=None)
    turn = relay_turn(admitted.conversation, regeneration.user_message.content if regeneration else content or "",
                      provider=admitted.provider, store=state.store, invocation=invocation,
                      settings=settings, connection=connection, fallbacks=admitted.fallbacks,
                      message_ids=admitted.message_ids, client_message_id=client_message_id,
                      store_read_ms=admitted.store_read_ms, regeneration=regeneration,
                      attachments=admitted.attachments, images=admitted.images,
                      images_read_ms=admitted.images_read_ms)
    return _streamed(encoding, held(turn, admitted.lease, _ends_the_answer), connection,
                     state.settings.on_client_disconnect)


def _ends_the_answer(event: TurnEvent) -> bool:
    return isinstance(event, Done | Failed)


def message_attachments(chat: ChatRequest) -> tuple[str, ...]:
    """The images a chat request names (``attachments``, its shape checked by relay/bodies.py): ids of uploads to
    this session (POST /sessions/{chatSessionId}/attachments). An id that cannot be one is simply not found (404),
    as a session's."""
    attachment_ids = tuple(chat.get("attachments") or ())
    if not all(is_id(attachment_id) for attachment_id in attachment_ids):
        raise RequestRejected(404, ATTACHMENT_NOT_FOUND, "no attachment with this id in this session")
    return attachment_ids


def _streamed(encoding: Encoding, events: AsyncGenerator[TurnEvent, None], connection: Connection,
              on_disconnect: str) -> EventStreamResponse:
    return EventStreamResponse(encoding.encode(events), encoding.media_type, connection, on_disconnect,
                               encoding.headers)


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
                 on_disconnect: str = config.ON_DISCONNECT_FINISH, headers: Mapping[str, str] | None = None) -> None:
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


def _number_in(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter's whole number within bounds, ``default`` when absent; a 422 otherwise."""
    if raw is None:
        return default
    number = bodies.whole_number(raw)
    if number is None or not low <= number <= high:
        raise bodies.invalid(f"{name} must be a whole number from {low} to {high}")
    return number


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    return _error(exc.status, exc.code, exc.message, exc.headers)


async def _unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthorized)
    return _error(401, UNAUTHORIZED, exc.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(exc.status_code, HTTP_ERROR)
    return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    from relay.telemetry import logger

    logger.warning("the store is unavailable", exc_info=exc)
    return _error(503, STORE_UNAVAILABLE, "the relay's storage is not answering; try again shortly",
                  {"Retry-After": str(config.STORE_RETRY_AFTER_SECONDS)})


async def _internal_error(request: Request, exc: Exception) -> Response:
    from relay.telemetry import logger

    logger.exception("unhandled error")
    return _error(500, INTERNAL_ERROR, "the relay failed; the error is logged")
