"""The API's bodies, defined once: every request and response body of every route, and the events of its streams.

Each body is a ``TypedDict`` that pydantic reads, with its limits as field constraints, so one definition serves
both ends:

- the request bodies' validators: pydantic's core schemas of ``REQUEST_BODIES``, made portable (``core_schemas``),
  which ``relay/bodies.py`` hands to pydantic-core alone (see there for why not pydantic itself);
- the OpenAPI document (``relay/openapi.py``), whose schemas pydantic draws from the same types, the answers and
  the streams' events included (the tests check what the app sends against them).

The API's JSON uses camelCase, so the fields do too. Requests are strict (a number is no string, ``1`` is no
``true``) and unknown fields are ignored, as clients add their own; what a body means beyond its shape (a provider
configured here, a model it offers, at least one change) is checked by the route.

Imported by the tests, ``python -m relay.openapi`` and type checking: never on the request path, since importing
pydantic costs ~35 ms of CPU (make bench).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter, WithJsonSchema, with_config
from pydantic_core import CoreSchema, core_schema

from relay import config
from relay.encodings import AI_SDK_FINISH_REASONS
from relay.errors import EXPLAINED, REQUEST_ERROR_CODES, STREAM_ERROR_CODES
from relay.reasoning import EFFORTS, MAX_BUDGET_TOKENS, MIN_BUDGET_TOKENS, Effort

__all__ = [
    "NOT_BLANK", "REQUEST_BODIES", "AiSdkChatRequest", "AttachmentRequest", "AttachmentUpload", "Cancelling",
    "ChatRequest", "DeleteIncomplete", "DoneEvent", "ErrorBody", "ErrorEvent", "Fallback", "Health", "Message",
    "MessageList", "ProviderList", "ReasoningEvent", "Session", "SessionChanges", "SessionCreated", "SessionList",
    "SessionSettings", "SessionSummary", "StartEvent", "StoredAttachment", "TokenEvent", "UiMessage",
    "UiMessageChunk", "UsageReport", "core_schemas"
]

# Text must hold something besides whitespace: a character outside what Python's str.isspace() calls whitespace,
# spelled out so that pydantic-core's regex engine (Rust's, whose \s is Unicode's White_Space and leaves out
# U+001C..U+001F) and a JSON Schema reader agree with str.strip(), which the checks before pydantic used.
NOT_BLANK = "[^\\t\\n\\x0B\\x0C\\r\\x1C-\\x1F \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
STATUSES = ("pending", "streaming", "complete", "error", "incomplete", "interrupted")  # records.py's, in order

REQUEST = ConfigDict(strict=True, extra="ignore")


@dataclass(frozen=True, slots=True)
class Explained:
    """Any failure of the annotated value becomes one error with this message (pydantic-core's custom-error
    schema), for a value whose rule one sentence says better than the errors of its parts would."""

    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.custom_error_schema(handler(source), EXPLAINED, custom_error_message=self.message)


def text(max_chars: int, description: str) -> Any:
    """A string field of at most ``max_chars`` characters that is not only whitespace."""
    return Field(max_length=max_chars, pattern=NOT_BLANK, description=description)


ProviderName = Annotated[str, text(config.MAX_MODEL_CHARS, "A provider configured here (GET /providers).")]
ModelName = Annotated[str, text(config.MAX_MODEL_CHARS, "One of the models the provider offers here.")]
Title = Annotated[str, text(config.MAX_TITLE_CHARS, "The conversation's title.")]
SystemText = Annotated[str, text(config.MAX_SYSTEM_CHARS, "The system prompt sent before the conversation.")]
ChatSessionId = Annotated[str, text(64, "The session's id (a ULID, as POST /sessions gives it).")]
ClientMessageId = Annotated[
    str, Field(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.:-]+$",
               description="The client's own id for this message: a retry with the same id joins the first "
                           "attempt's turn instead of starting another."),
    Explained("must be 1 to 64 letters, digits, '-', '_', '.' or ':'"),
]


# Requests


@with_config(REQUEST)
class Fallback(TypedDict):
    """A provider and model to try, in order, when the session's own fails before its first token."""

    provider: ProviderName
    model: ModelName


@with_config(ConfigDict(strict=True, extra="forbid"))
class ReasoningEffort(TypedDict):
    effort: Effort


@with_config(ConfigDict(strict=True, extra="forbid"))
class ReasoningBudget(TypedDict):
    budgetTokens: Annotated[int, Field(ge=MIN_BUDGET_TOKENS, le=MAX_BUDGET_TOKENS)]


Reasoning = Annotated[
    ReasoningEffort | ReasoningBudget,
    Explained(f'must be {{"effort": {" | ".join(f'"{effort}"' for effort in EFFORTS)}}} or '
              f'{{"budgetTokens": a whole number from {MIN_BUDGET_TOKENS} to {MAX_BUDGET_TOKENS}}}'),
    Field(description="What the session asks its models for: an effort, or a budget of reasoning tokens; a model "
                      "that takes neither is sent nothing, and its answer says so in metadata.notes."),
]
Fallbacks = Annotated[list[Fallback], Field(max_length=config.MAX_FALLBACKS)]


@with_config(ConfigDict(strict=True, extra="ignore",
                        json_schema_extra={"examples": [{"provider": "openai", "model": "gpt-4o-mini"}]}))
class SessionSettings(TypedDict):
    """POST /sessions: a new conversation."""

    provider: ProviderName
    model: ModelName
    title: NotRequired[Title | None]
    system: NotRequired[SystemText | None]
    fallbacks: NotRequired[Fallbacks | None]
    reasoning: NotRequired[Reasoning | None]


@with_config(REQUEST)
class SessionChanges(TypedDict):
    """PATCH /sessions/{chatSessionId}: at least one of these; one absent or null is left as it is, and an empty
    list of fallbacks removes them. A new provider without a model keeps the session's model."""

    provider: NotRequired[ProviderName | None]
    model: NotRequired[ModelName | None]
    title: NotRequired[Title | None]
    system: NotRequired[SystemText | None]
    fallbacks: NotRequired[Fallbacks | None]
    reasoning: NotRequired[Reasoning | None]


AttachmentId = Annotated[str, Field(max_length=64, description="An attachmentId of an upload to this session.")]
Attachments = Annotated[
    list[AttachmentId],
    Field(max_length=config.MAX_IMAGES_PER_MESSAGE,
          description=f"Images uploaded to this session (POST /sessions/{{chatSessionId}}/attachments), each named "
                      f"once and sent before the text: at most {config.MAX_IMAGES_PER_MESSAGE}, of at most "
                      f"{config.MAX_MESSAGE_IMAGE_BYTES} bytes in all. With images the content may be left out."),
]


@with_config(REQUEST)
class ChatRequest(TypedDict):
    """POST /chat/stream: a new message (``content``, ``attachments`` or both), or ``"regenerate": true``, which
    answers the last message again, with its images, and takes neither."""

    chatSessionId: ChatSessionId
    content: NotRequired[Annotated[str, text(config.MAX_CONTENT_CHARS, "The new message.")] | None]
    attachments: NotRequired[Attachments | None]
    regenerate: NotRequired[bool]
    clientMessageId: NotRequired[ClientMessageId | None]


ImageMediaType = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]  # config.IMAGE_MEDIA_TYPES


@with_config(REQUEST)
class AttachmentRequest(TypedDict):
    """POST /sessions/{chatSessionId}/attachments: an image the browser is about to upload."""

    mediaType: Annotated[ImageMediaType, Field(description="What the file says it is; the relay reads the type "
                                                           "from its bytes when it is sent.")]
    size: Annotated[int, Field(ge=1, description=f"Its exact length in bytes, at most {config.MAX_IMAGE_BYTES} "
                                                  "(a larger one is attachment_too_large).")]


@with_config(REQUEST)
class UiMessagePart(TypedDict):
    """A text part (``text``), or a file part naming an uploaded image: ``mediaType`` image/..., ``url``
    ``attachment:<attachmentId>``; any other part is ignored."""

    type: str
    text: NotRequired[str]
    mediaType: NotRequired[str]
    url: NotRequired[str]


@with_config(REQUEST)
class UiMessage(TypedDict):
    """An AI SDK UI message. Only the last one is read: it must be the user's, and its text parts are the new
    message's content; its id makes a resubmission idempotent."""

    id: NotRequired[str]
    role: str
    parts: list[UiMessagePart]


@with_config(REQUEST)
class AiSdkChatRequest(TypedDict):
    """POST /chat/stream?protocol=ai-sdk: the body the AI SDK's DefaultChatTransport posts (useChat). The session
    is ``chatSessionId`` when given, else ``id``; the provider gets the stored history, never the client's copy.
    ``trigger`` ``regenerate-message`` (useChat's ``regenerate()``) answers the last user message again."""

    id: NotRequired[str]
    chatSessionId: NotRequired[str]
    messages: Annotated[list[UiMessage], Field(min_length=1)]
    trigger: NotRequired[str | None]


# The request bodies relay/bodies.py validates, by the name it asks for.
REQUEST_BODIES: dict[str, type] = {body.__name__: body for body in (SessionSettings, SessionChanges, ChatRequest,
                                                                   AiSdkChatRequest, AttachmentRequest)}


# Responses


class Health(TypedDict):
    status: Literal["ok"]


class ProviderEntry(TypedDict):
    name: str
    models: list[str]


class ProviderList(TypedDict):
    """The providers configured here, with the models each offers (a ``*`` in the operator's list lets a session
    name any model, and is never listed)."""

    providers: list[ProviderEntry]


class SessionCreated(TypedDict):
    chatSessionId: str


class SessionSummary(TypedDict):
    chatSessionId: str
    title: str | None
    provider: str
    model: str
    createdAt: str
    updatedAt: str  # the last activity
    messageCount: NotRequired[int]  # absent on sessions no turn has counted yet


class SessionList(TypedDict):
    """The caller's conversations, most recently active first; ``nextCursor`` asks for the next page."""

    sessions: list[SessionSummary]
    nextCursor: NotRequired[str]


class Session(SessionSummary):
    """A session as PATCH leaves it."""

    system: str | None
    fallbacks: list[Fallback]


class AttachmentUpload(TypedDict):
    """A presigned upload of one image: PUT exactly its bytes to ``uploadUrl``, with ``uploadHeaders``, before
    ``expiresAt``; then name ``attachmentId`` in POST /chat/stream."""

    attachmentId: str
    uploadUrl: str
    uploadHeaders: dict[str, str]
    expiresAt: str


class StoredAttachment(TypedDict):
    """An image a user message carries: its type as its bytes show it, and a short-lived URL to show it by."""

    attachmentId: str
    mediaType: ImageMediaType
    size: int
    url: NotRequired[str]


class Message(TypedDict):
    messageId: str
    role: Literal["user", "ai"]
    content: str
    attachments: NotRequired[list[StoredAttachment]]  # a user message's images
    reasoning: NotRequired[str]  # an answer's reasoning, when its model streamed any
    status: Annotated[str, WithJsonSchema({"type": "string", "enum": list(STATUSES)})]
    createdAt: str
    metadata: dict[str, Any]


class MessageList(TypedDict):
    """A session's messages, oldest first."""

    messages: list[Message]


class DeleteIncomplete(TypedDict):
    """The function's time ran out before every conversation was erased: send the request again."""

    status: Literal["incomplete"]
    message: str


class Cancelling(TypedDict):
    messageId: str
    status: Literal["cancelling"]


class UsageCounts(TypedDict):
    inputTokens: int
    outputTokens: int
    requests: int


class UsageLimits(TypedDict):
    """The limits that apply to the caller; one that is off is null."""

    tokensPerDay: int | None
    tokensPerMonth: int | None
    requestsPerMinute: int | None
    concurrentStreams: int | None


class UsageReport(TypedDict):
    """The caller's spending this UTC day and month."""

    day: UsageCounts
    month: UsageCounts
    limits: UsageLimits


class ErrorDetail(TypedDict):
    code: Annotated[str, WithJsonSchema({"type": "string", "enum": list(REQUEST_ERROR_CODES)})]
    message: str


class ErrorBody(TypedDict):
    """Every refusal before a stream starts, and nothing written."""

    error: ErrorDetail


# The events of POST /chat/stream and GET .../stream (text/event-stream): the data of each, by event name.


class StartEvent(TypedDict):
    """``event: start``, once the message and its pending answer are stored."""

    userMessageId: str
    messageId: str


class TokenEvent(TypedDict):
    """``event: token``; its ``id`` is the answer's offset after it, in characters (code points), and once the answer
    has reasoning ``<text offset>:<reasoning offset>``."""

    text: str


class ReasoningEvent(TypedDict):
    """``event: reasoning``; its ``id`` is ``<text offset>:<reasoning offset>``."""

    text: str


class TokenUsage(TypedDict):
    inputTokens: int | None
    outputTokens: int | None
    reasoningTokens: NotRequired[int]


class DoneEvent(TypedDict):
    """``event: done``: the answer is stored complete."""

    messageId: str
    finishReason: str | None
    usage: TokenUsage
    ttftMs: float | None
    tokensPerSecond: float | None
    timeToFirstReasoningMs: NotRequired[float]


class ErrorEvent(TypedDict):
    """``event: error``: the turn ended otherwise; what was received is stored."""

    code: Annotated[str, WithJsonSchema({"type": "string", "enum": list(STREAM_ERROR_CODES)})]
    message: str


# The AI SDK's UI message stream (?protocol=ai-sdk): each ``data:`` line's JSON, then ``data: [DONE]``.


class UiStart(TypedDict):
    type: Literal["start"]
    messageId: str


class UiPartBoundary(TypedDict):
    type: Literal["text-start", "text-end", "reasoning-start", "reasoning-end"]
    id: str


class UiDelta(TypedDict):
    type: Literal["text-delta", "reasoning-delta"]
    id: str
    delta: str


class UiFinishMetadata(TypedDict):
    usage: TokenUsage
    ttftMs: float | None
    tokensPerSecond: float | None
    timeToFirstReasoningMs: NotRequired[float]


class UiFinish(TypedDict):
    type: Literal["finish"]
    finishReason: Annotated[str, WithJsonSchema({"type": "string",
                                                 "enum": sorted({*AI_SDK_FINISH_REASONS.values(), "other"})})]
    messageMetadata: UiFinishMetadata


class UiError(TypedDict):
    type: Literal["error"]
    errorText: str  # "<code>: <message>", the codes of event: error


UiMessageChunk = Annotated[UiStart | UiPartBoundary | UiDelta | UiFinish | UiError, Field(discriminator="type")]


def core_schemas() -> dict[str, Any]:
    """The core schema pydantic makes of each request body, as plain JSON: without the Python objects it keeps
    beside them (the TypedDict class, the JSON Schema hooks in ``metadata``) and with its references named by the
    type alone (pydantic appends an object's id, which changes from run to run). pydantic-core builds the same
    validator from it."""
    return {name: _portable(TypeAdapter(body).core_schema) for name, body in REQUEST_BODIES.items()}


def _portable(schema: Any) -> Any:
    if isinstance(schema, dict):
        kept = {key: _portable(value) for key, value in schema.items() if key not in ("cls", "metadata")}
        for key in ("ref", "schema_ref"):
            if isinstance(kept.get(key), str):
                kept[key] = kept[key].rpartition(":")[0] or kept[key]
        return kept
    if isinstance(schema, list | tuple):
        return [_portable(value) for value in schema]
    return schema
