"""The relay's API as an OpenAPI 3.1 document, drawn from relay/api.py, and the request validators' core schemas.

    python -m relay.openapi     writes openapi.json and request_schemas.json beside this module (make openapi)

Both files are committed and both are package data of the layer: the app serves openapi.json as it is
(``GET /openapi.json``), and relay/bodies.py builds its validators from request_schemas.json, so that the function
never imports pydantic (relay/bodies.py says what that saves). tests/test_api.py keeps both equal to what this
module makes of api.py now; edit api.py, then run ``make openapi``.

The streams are ``text/event-stream``. A stream's ``schema`` describes one event, as OpenAPI 3.1's own text does
for that media type and as schemathesis reads it (an object of ``event``, ``data``, ``id``): one branch per event
name, whose ``data`` is JSON of that event's component (``contentSchema``), and for ``?protocol=ai-sdk`` unnamed
events (``message``) whose ``data`` is a UI message chunk or ``[DONE]``. JSON Schema does not check a
``contentSchema`` by itself, so the media type also names the same components in ``x-sse-events`` (event name →
schema) and ``x-ui-message-stream``, which tests/test_api.py checks every event's data against.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from relay import __version__, api, config, encodings
from relay.bodies import SCHEMAS
from relay.json_input import MAX_DEPTH

__all__ = ["DOCUMENT", "OPERATIONS", "document", "main"]

DOCUMENT = Path(__file__).with_name("openapi.json")
REF = "#/components/schemas/{model}"
EVENTS = {"start": "StartEvent", "reasoning": "ReasoningEvent", "token": "TokenEvent", "done": "DoneEvent",
          "error": "ErrorEvent"}
COMPONENTS = [
    *api.REQUEST_BODIES.values(), api.Health, api.ProviderList, api.SessionCreated, api.SessionList, api.Session,
    api.MessageList, api.AttachmentUpload, api.DeleteIncomplete, api.Cancelling, api.UsageReport, api.ErrorBody,
    *(getattr(api, name) for name in EVENTS.values()),
]
ERRORS = {
    400: f"Not JSON, not UTF-8, an integer of over 4,300 digits (invalid_json), or nested deeper than {MAX_DEPTH} "
         "levels (json_too_deep)",
    401: "No valid token (WWW-Authenticate: Bearer)",
    404: "No such session (or another user's), message or route; an attachment not uploaded to this session "
         "(attachment_not_found)",
    409: "A clientMessageId reused for other content (client_message_conflict), a regenerate while the answer is "
         "generated (answer_in_progress) or with nothing to answer (nothing_to_regenerate), a cancel of an answer "
         "no run is generating (not_streaming)",
    413: f"A body over {config.MAX_BODY_BYTES} bytes",
    415: "A body that is not application/json",
    422: "A body, query or header the API does not take (validation_error), a model its provider does not offer "
         "here (model_not_offered), a session whose provider is not configured here (provider_not_configured); an "
         "image over its cap (attachment_too_large) or whose bytes are no PNG, JPEG, WebP or GIF "
         "(attachment_not_an_image), a model that takes no images (images_not_supported), a relay with no "
         "attachments bucket (attachments_not_configured)",
    429: "Over a limit (rate_limited) or a token budget (budget_exceeded)",
    503: "The store is not answering (store_unavailable)",
}
RETRY_AFTER = {"Retry-After": {"required": True, "description": "Seconds to wait before trying again",
                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
ERROR_HEADERS = {401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
                 429: RETRY_AFTER, 503: RETRY_AFTER}
BODY_ERRORS = (400, 413, 415, 422)
CHAT_SESSION_ID = {"name": "chatSessionId", "in": "path", "required": True, "schema": {"type": "string"},
                   "description": "A session's id (a ULID); any other is not found"}
MESSAGE_ID = {"name": "messageId", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "An answer's id (the messageId of `start`)"}
OFFSET = {"type": "integer", "minimum": 0, "maximum": 999_999_999}
NEW_SESSION = "$response.body#/chatSessionId"
THIS_SESSION = "$request.path.chatSessionId"
LAST_ANSWER = "$response.body#/messages/1/messageId"  # a first turn's answer: its user message is message 0


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    status: int  # the answer when all goes well
    answer: str | dict[str, Any] | None = None  # its schema, by name or inline (None: no body, or a stream)
    body: str | None = None  # the request body's schema
    errors: tuple[int, ...] = (401, 503)
    parameters: tuple[dict[str, Any], ...] = ()
    stream: bool = False
    public: bool = False  # no token needed
    more: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # other answers: description, schema
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # where the answer's ids lead (OpenAPI links)


OPERATIONS = (
    Operation("get", "/healthz", "healthz", "Whether the relay is up", 200, "Health", errors=(), public=True),
    Operation("get", "/openapi.json", "openapi", "This document", 200, {"type": "object"}, errors=(), public=True),
    Operation("get", "/providers", "listProviders", "The providers configured here and their models", 200,
              "ProviderList", errors=(401,)),
    Operation("post", "/sessions", "createSession", "Start a conversation", 201, "SessionCreated",
              "SessionSettings", errors=(*BODY_ERRORS, 401, 503), links={
                  "ChatInIt": {"operationId": "chatStream",
                               "requestBody": {"chatSessionId": NEW_SESSION, "content": "Hello!"}},
                  "ItsMessages": {"operationId": "listMessages", "parameters": {"chatSessionId": NEW_SESSION}},
                  "ChangeIt": {"operationId": "updateSession", "parameters": {"chatSessionId": NEW_SESSION}},
                  "EraseIt": {"operationId": "deleteSession", "parameters": {"chatSessionId": NEW_SESSION}}}),
    Operation("get", "/sessions", "listSessions", "The caller's conversations, most recently active first", 200,
              "SessionList", errors=(401, 422, 503), parameters=(
                  {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                             "maximum": config.MAX_SESSIONS_PAGE,
                                                             "default": config.DEFAULT_SESSIONS_PAGE}},
                  {"name": "cursor", "in": "query", "schema": {"type": "string"},
                   "description": "A page's nextCursor"})),
    Operation("delete", "/sessions", "deleteAllSessions", "Erase all of the caller's conversations", 204,
              more={202: ("The function's time ran out first: send the request again", "DeleteIncomplete")}),
    Operation("patch", "/sessions/{chatSessionId}", "updateSession", "Change a conversation's settings", 200,
              "Session", "SessionChanges", errors=(*BODY_ERRORS, 401, 404, 503), parameters=(CHAT_SESSION_ID,)),
    Operation("delete", "/sessions/{chatSessionId}", "deleteSession", "Erase a conversation and all it holds", 204,
              errors=(401, 404, 503), parameters=(CHAT_SESSION_ID,)),
    Operation("get", "/sessions/{chatSessionId}/messages", "listMessages", "A conversation's messages, oldest first",
              200, "MessageList", errors=(401, 404, 503), parameters=(CHAT_SESSION_ID,), links={
                  "FollowItsAnswer": {"operationId": "resumeMessage",
                                      "parameters": {"chatSessionId": THIS_SESSION, "messageId": LAST_ANSWER}},
                  "StopItsAnswer": {"operationId": "cancelMessage",
                                    "parameters": {"chatSessionId": THIS_SESSION, "messageId": LAST_ANSWER}}}),
    Operation("post", "/sessions/{chatSessionId}/attachments", "createAttachment",
              "Presign the upload of one image, to send with a message", 201, "AttachmentUpload",
              "AttachmentRequest", errors=(*BODY_ERRORS, 401, 404, 503), parameters=(CHAT_SESSION_ID,)),
    Operation("post", "/chat/stream", "chatStream", "Send a message and stream its answer", 200,
              body="ChatRequest", stream=True, errors=(*BODY_ERRORS, 401, 404, 409, 429, 503), parameters=(
                  {"name": "protocol", "in": "query", "schema": {"type": "string", "enum": [encodings.AI_SDK]},
                   "description": "ai-sdk: take the AI SDK's body (AiSdkChatRequest) and answer its UI message "
                                  "stream"},)),
    Operation("post", "/sessions/{chatSessionId}/messages/{messageId}/cancel", "cancelMessage",
              "Stop an answer being generated; its text so far is kept", 202, "Cancelling",
              errors=(401, 404, 409, 503), parameters=(CHAT_SESSION_ID, MESSAGE_ID)),
    Operation("get", "/sessions/{chatSessionId}/messages/{messageId}/stream", "resumeMessage",
              "Follow an answer from an offset: the stored text, then the rest as it is generated", 200,
              stream=True, errors=(401, 404, 422, 429, 503), parameters=(
                  CHAT_SESSION_ID, MESSAGE_ID,
                  {"name": "offset", "in": "query", "schema": OFFSET, "description": "The text offset to resume from"},
                  {"name": "reasoningOffset", "in": "query", "schema": OFFSET,
                   "description": "The reasoning's offset to resume from"},
                  {"name": "Last-Event-ID", "in": "header",
                   "schema": {"type": "string", "pattern": "^[0-9]{1,9}(:[0-9]{1,9})?$"},
                   "description": "The id of the last event seen, instead of the offsets"})),
    Operation("get", "/usage", "getUsage", "The caller's spending this UTC day and month, and the limits", 200,
              "UsageReport"),
)


def document() -> dict[str, Any]:
    _, definitions = TypeAdapter.json_schemas(
        [(body.__name__, "validation", TypeAdapter(body)) for body in COMPONENTS], ref_template=REF)
    chunk, chunk_definitions = TypeAdapter.json_schemas(
        [("UiMessageChunk", "validation", TypeAdapter(api.UiMessageChunk))], ref_template=REF)
    components = {**definitions["$defs"], **chunk_definitions["$defs"],
                  "UiMessageChunk": chunk["UiMessageChunk", "validation"]}
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Chat relay", "version": __version__,
                 "description": "A streaming LLM chat relay on AWS Lambda. Every refusal before a stream starts is "
                                "an ErrorBody and writes nothing; a stream ends with `done` or `error`."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": "With AuthMode jwt; behind CloudFront (AuthMode iam) the "
                                                          "token travels in X-User-Authorization"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(operation: Operation) -> dict[str, Any]:
    described: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary}
    if operation.public:
        described["security"] = []
    if operation.parameters:
        described["parameters"] = list(operation.parameters)
    if operation.body is not None:
        schema: dict[str, Any] = _ref(operation.body)
        if operation.stream:
            schema = {"anyOf": [schema, _ref("AiSdkChatRequest")]}
        described["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    responses: dict[str, Any] = {str(operation.status): _answer(operation)}
    if operation.links:
        responses[str(operation.status)]["links"] = operation.links
    for status, (description, schema_name) in operation.more.items():
        responses[str(status)] = _json(description, schema_name)
    for status in sorted(operation.errors):
        responses[str(status)] = _json(ERRORS[status], "ErrorBody") | (
            {"headers": ERROR_HEADERS[status]} if status in ERROR_HEADERS else {})
    described["responses"] = responses
    return described


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event named ``name`` whose ``data`` is as the schema ``data`` says."""
    return {"type": "object", "required": ["event", "data"],
            "properties": {"event": {"const": name}, "id": {"type": "string"}, "data": data}}


def _json_text(schema: str) -> dict[str, Any]:
    """A string of JSON of the component ``schema``."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(schema)}


def _answer(operation: Operation) -> dict[str, Any]:
    if operation.stream:
        one_of = [_event(name, _json_text(schema)) for name, schema in EVENTS.items()]
        extensions: dict[str, Any] = {"x-sse-events": {name: _ref(schema) for name, schema in EVENTS.items()}}
        if operation.body is not None:
            chunk = {"type": "string", "anyOf": [_json_text("UiMessageChunk"), {"const": "[DONE]"}]}
            one_of.append(_event("message", chunk) | {"description": "?protocol=ai-sdk: a UI message chunk, and "
                                                                     "[DONE] last"})
            extensions["x-ui-message-stream"] = _ref("UiMessageChunk")
        events = {"schema": {"oneOf": one_of}, **extensions}
        content = {"text/event-stream": events}
        if operation.body is not None:
            content["text/plain"] = {"schema": {"type": "string"}}
        return {"description": "The answer as it is generated: our events, the AI SDK's UI message stream with "
                               "?protocol=ai-sdk, or its text alone with Accept: text/plain", "content": content}
    if operation.answer is None:
        return {"description": "Done"}
    return _json("OK", operation.answer)


def _json(description: str, schema: str | dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def main() -> int:
    """Writes the document and the request validators' schemas beside this module."""
    DOCUMENT.write_text(json.dumps(document(), indent=1, ensure_ascii=False) + "\n")
    SCHEMAS.write_text(json.dumps(api.core_schemas(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {DOCUMENT} and {SCHEMAS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
