"""Request bodies: read within their size, parsed with their nesting bounded, and validated against the API's schema.

The bytes are read as they come (64 KiB at most), parsed by ``json_input`` (which refuses deep nesting before any
parser recurses into it), and checked by the validators pydantic makes of relay/api.py's types. Those validators run
on pydantic-core alone: ``request_schemas.json``, beside this module, holds the core schemas pydantic generates for
the request bodies (``python -m relay.openapi`` writes it; a test keeps it equal to what pydantic makes of api.py).
pydantic itself stays off the request path because its import is what a cold start would pay. Measured side by
side (make bench, the layer as deployed, after what the relay imports anyway): importing pydantic-core, building
the four validators from these schemas and a first validation take ~11 ms of CPU; pydantic and TypeAdapters of
api.py's types ~68 ms, ~35 of them pydantic's import. On a whole cold start (11 rounds alternating), the first
token came at 507 ms with these validators against 520 ms before any (within the noise), and at 701 ms with
pydantic's built as the app starts.

A body that is not what the schema says is a 422 ``validation_error`` naming the first field at fault; nothing is
written before it passes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic_core import ErrorDetails, SchemaValidator, ValidationError
from starlette.requests import Request

from relay import config, json_input
from relay.errors import (
    EXPLAINED,
    INVALID_JSON,
    JSON_TOO_DEEP,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    RequestRejected,
)

if TYPE_CHECKING:
    from relay.api import (
        AiSdkChatRequest,
        AttachmentRequest,
        ChatRequest,
        SessionChanges,
        SessionSettings,
        UiMessagePart,
    )

__all__ = ["ATTACHMENT_SCHEME", "SCHEMAS", "ai_sdk_chat_request", "attachment_request", "chat_request", "invalid",
           "read_json", "session_changes", "session_settings", "whole_number"]

SCHEMAS = Path(__file__).with_name("request_schemas.json")
AI_SDK_REGENERATE = "regenerate-message"  # the AI SDK's trigger for useChat's regenerate()
WHOLE_NUMBER_PATTERN = re.compile(r"[0-9]{1,9}")  # under a billion: an offset, a body size, a page size
ATTACHMENT_SCHEME = "attachment:"  # an AI SDK file part's url naming an image uploaded to the relay

# How each kind of pydantic error reads after the field's name; any other reads as pydantic words it.
PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",  # JSON allows lone surrogates ("\ud800"); UTF-8 and DynamoDB do not
    "string_pattern_mismatch": "must not be empty",  # the one pattern not explained otherwise: api.NOT_BLANK
    "string_too_long": "must be at most {max_length} characters",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "greater_than_equal": "must be at least {ge}",
    "list_type": "must be a list",
    "too_long": "must hold at most {max_length} items",
    "too_short": "must be a non-empty list",  # the API's one lower bound on a list: at least one message
    "dict_type": "must be a JSON object",
    "literal_error": "must be {expected}",
}

_VALIDATORS = {name: SchemaValidator(schema) for name, schema in json.loads(SCHEMAS.read_bytes()).items()}


async def session_settings(request: Request) -> SessionSettings:
    return cast("SessionSettings", _validated("SessionSettings", await read_json(request)))


async def session_changes(request: Request) -> SessionChanges:
    return cast("SessionChanges", _validated("SessionChanges", await read_json(request)))


async def chat_request(request: Request) -> ChatRequest:
    return _chat_request(await read_json(request))


async def attachment_request(request: Request) -> AttachmentRequest:
    return cast("AttachmentRequest", _validated("AttachmentRequest", await read_json(request)))


async def ai_sdk_chat_request(request: Request) -> ChatRequest:
    """The chat request an AI SDK body stands for: its session (``chatSessionId``, else the chat's ``id``), the
    text of its last message, which must be the user's, the images its ``file`` parts name, and that message's id
    as the ``clientMessageId``, so that a resubmission does not ask the provider twice. The content is checked as
    any other chat request's.

    useChat's ``regenerate()`` posts the same last user message, with the same id, and ``trigger``
    ``regenerate-message``: it is a regenerate, without that id, which names the first answer's turn (taken as a
    resubmission, it would replay the answer the user asked to replace), and without its images, which the relay
    sends again from the stored message."""
    body = cast("AiSdkChatRequest", _validated("AiSdkChatRequest", await read_json(request)))
    last = body["messages"][-1]
    if last["role"] != "user":
        raise invalid("the last message must be the user's new message (or, for regenerate(), the one "
                      "answered again)")
    chat: dict[str, Any]
    if body.get("trigger") == AI_SDK_REGENERATE:
        chat = {"regenerate": True}
    else:
        content = "".join(part.get("text", "") for part in last["parts"] if part["type"] == "text")
        attachments = [_attachment_id(part) for part in last["parts"] if part["type"] == "file"]
        chat = {"content": content if content or not attachments else None, "clientMessageId": last.get("id")}
        if attachments:
            chat["attachments"] = attachments
    if (chat_session_id := body.get("chatSessionId", body.get("id"))) is not None:
        chat["chatSessionId"] = chat_session_id
    return _chat_request(chat)


def _attachment_id(part: UiMessagePart) -> str:
    """The image a ``file`` part names: an upload to the relay, by ``attachment:<attachmentId>``. Files are not
    taken inline (a data URL would take the body past its 64 KiB), nor fetched from elsewhere."""
    if not part.get("mediaType", "").startswith("image/"):
        raise invalid("a file part must be an image (PNG, JPEG, WebP or GIF)")
    url = part.get("url", "")
    if not url.startswith(ATTACHMENT_SCHEME):
        raise invalid(f"a file part's url must name an upload to the relay, {ATTACHMENT_SCHEME}<attachmentId> "
                      "(uploadAttachment)")
    return url.removeprefix(ATTACHMENT_SCHEME)


def _chat_request(body: Any) -> ChatRequest:
    """A chat request's meaning beyond its shape: a new message has content, images or both, each image named
    once; a regenerate has neither (it answers the last message again, with its images)."""
    request = cast("ChatRequest", _validated("ChatRequest", body))
    attachments = request.get("attachments") or []
    if request.get("regenerate", False):
        if request.get("content") is not None or attachments:
            raise invalid("a regenerate answers the last message again: it takes no content or attachments (it "
                          "sends that message's images)")
    elif request.get("content") is None and not attachments:
        raise invalid("content is required")
    if len(set(attachments)) != len(attachments):
        raise invalid("attachments must name each image once")
    return request


async def read_json(request: Request) -> Any:
    """The body's JSON value, read within ``MAX_BODY_BYTES`` and parsed with its nesting bounded."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise RequestRejected(415, UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)")
    declared = whole_number(request.headers.get("content-length", ""))
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
        return json_input.loads(b"".join(chunks))
    except json_input.TooDeep as exc:
        raise RequestRejected(400, JSON_TOO_DEEP, f"the body must not nest deeper than {exc.max_depth} levels") \
            from None
    except ValueError:  # not JSON, not UTF-8, or an integer over Python's 4,300 digits
        raise RequestRejected(400, INVALID_JSON, "the body is not valid JSON") from None


def whole_number(raw: str) -> int | None:
    """ASCII digits only: ``str.isdigit`` also takes "²", which int() refuses, and "١٢", which int() reads."""
    return int(raw) if WHOLE_NUMBER_PATTERN.fullmatch(raw) else None


def invalid(message: str) -> RequestRejected:
    return RequestRejected(422, VALIDATION_ERROR, message)


def _validated(name: str, value: Any) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], _VALIDATORS[name].validate_python(value))
    except ValidationError as exc:
        # Neither the input nor pydantic's rendering of it goes anywhere: it can be prompt text.
        raise invalid(_message(exc.errors(include_url=False, include_input=False)[0])) from None


def _message(error: ErrorDetails) -> str:
    where = ".".join(f"[{part}]" if isinstance(part, int) else part for part in error["loc"]).replace(".[", "[")
    if error["type"] == EXPLAINED:
        return f"{where} {error['msg']}"
    phrase = PHRASES.get(error["type"])
    if phrase is None:
        return f"{where or 'the body'}: {error['msg']}"
    return f"{where or 'the body'} {phrase.format_map(error.get('ctx') or {})}"


def _too_large() -> RequestRejected:
    return RequestRejected(413, PAYLOAD_TOO_LARGE, f"the body must be at most {config.MAX_BODY_BYTES} bytes")
