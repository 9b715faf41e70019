"""Exceptions of the relay, and every error code the API answers.

    RelayError
    ├── RequestRejected        a request is refused before anything is streamed or stored (a 4xx)
    │   ├── TooManyRequests    limits.py: over the requests per minute or the concurrent streams (429)
    │   └── BudgetExceeded     usage.py: over a day's or a month's token budget (429)
    ├── ProviderError          a provider failed: HTTP error, error event, cut stream, timeout, unreachable
    ├── StoreError             DynamoDB failed, or did not answer within its time budget, after botocore's retries
    ├── Unauthorized           auth.py: no valid credentials (401)
    ├── ConfigurationError     auth.py: settings a deployment must not start with
    └── SessionNotFound, ClientMessageConflict, AnswerReplaced, InvalidCursor
                               store.py: what a conditional write or a cursor found, for its caller to answer

``ProviderError.code`` is the stable code the client sees in ``event: error``; a ``StoreError`` reaches the client
as ``store_unavailable`` (a 503 before streaming, an ``event: error`` after). Messages never carry API keys or
prompt text.

Every code is named here once: ``REQUEST_ERROR_CODES`` are those of ``{"error": {"code", "message"}}`` answers,
``STREAM_ERROR_CODES`` those of ``event: error``. The OpenAPI document lists them (relay/api.py), and a test keeps
the README's lists equal to them.
"""

from __future__ import annotations

# A request refused before anything streams: {"error": {"code", "message"}} with a 4xx (or 503, 500).
INVALID_JSON = "invalid_json"  # 400: not JSON, not UTF-8, or an integer of over 4,300 digits
JSON_TOO_DEEP = "json_too_deep"  # 400: nested deeper than json_input.MAX_DEPTH
UNAUTHORIZED = "unauthorized"  # 401
NOT_FOUND = "not_found"  # 404: no such route; in ``event: error``, an answer that is gone
SESSION_NOT_FOUND = "session_not_found"  # a 404, or ``event: error`` when the session is deleted under a turn
MESSAGE_NOT_FOUND = "message_not_found"  # 404
METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
HTTP_ERROR = "http_error"  # any other status Starlette itself raises
CLIENT_MESSAGE_CONFLICT = "client_message_conflict"  # 409: a clientMessageId reused for other content
NOTHING_TO_REGENERATE = "nothing_to_regenerate"  # 409
NOT_STREAMING = "not_streaming"  # 409: a cancel of an answer no run is generating
# A regenerate (409, or ``event: error``) while the answer it would replace is still being generated or replaced.
ANSWER_IN_PROGRESS = "answer_in_progress"
PAYLOAD_TOO_LARGE = "payload_too_large"  # 413
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
VALIDATION_ERROR = "validation_error"  # 422: a body, query or header the API does not take
MODEL_NOT_OFFERED = "model_not_offered"  # 422: a model outside its provider's list
PROVIDER_NOT_CONFIGURED = "provider_not_configured"  # 422: a session whose provider is not set up here
RATE_LIMITED = "rate_limited"  # 429: requests per minute, or streams at once
BUDGET_EXCEEDED = "budget_exceeded"  # 429: the user has spent a day's or a month's token budget
INTERNAL_ERROR = "internal_error"  # 500: a bug; the fuzz tests look for any
# The store's code, in a 503 before streaming and in ``event: error`` after.
STORE_UNAVAILABLE = "store_unavailable"
# Image attachments (relay/attachments.py): a 404 for one that is not in the session (or not uploaded), a 422 for one
# too large, one whose bytes are no image the relay takes (whatever its name says), a model that takes none, or a
# deployment with no bucket.
ATTACHMENT_NOT_FOUND = "attachment_not_found"
ATTACHMENT_TOO_LARGE = "attachment_too_large"
ATTACHMENT_NOT_AN_IMAGE = "attachment_not_an_image"
IMAGES_NOT_SUPPORTED = "images_not_supported"
ATTACHMENTS_NOT_CONFIGURED = "attachments_not_configured"

# A turn that fails once the response streams: ``event: error`` (ProviderError codes, and the turn's own).
PROVIDER_AUTH = "provider_auth"
PROVIDER_RATE_LIMITED = "provider_rate_limited"
PROVIDER_UNAVAILABLE = "provider_unavailable"
PROVIDER_BAD_REQUEST = "provider_bad_request"
PROVIDER_ERROR = "provider_error"
PROVIDER_TIMEOUT = "provider_timeout"
PROVIDER_INCOMPLETE = "provider_incomplete"
DEADLINE = "deadline"  # the function's time limit is near: the turn stops and stores what it has
CANCELLED = "cancelled"  # someone asked to stop this answer (POST .../messages/{messageId}/cancel)

# Not a code of the API's: the type of a pydantic validation error that words itself (relay/api.py's Explained), so
# that relay/bodies.py passes its message on as it is, under validation_error.
EXPLAINED = "explained"

REQUEST_ERROR_CODES = (
    INVALID_JSON, JSON_TOO_DEEP, UNAUTHORIZED, NOT_FOUND, SESSION_NOT_FOUND, MESSAGE_NOT_FOUND, METHOD_NOT_ALLOWED,
    HTTP_ERROR, CLIENT_MESSAGE_CONFLICT, NOTHING_TO_REGENERATE, NOT_STREAMING, ANSWER_IN_PROGRESS, PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE, VALIDATION_ERROR, MODEL_NOT_OFFERED, PROVIDER_NOT_CONFIGURED, RATE_LIMITED,
    BUDGET_EXCEEDED, INTERNAL_ERROR, STORE_UNAVAILABLE, ATTACHMENT_NOT_FOUND, ATTACHMENT_TOO_LARGE,
    ATTACHMENT_NOT_AN_IMAGE, IMAGES_NOT_SUPPORTED, ATTACHMENTS_NOT_CONFIGURED,
)
STREAM_ERROR_CODES = (
    PROVIDER_AUTH, PROVIDER_RATE_LIMITED, PROVIDER_UNAVAILABLE, PROVIDER_BAD_REQUEST, PROVIDER_ERROR, PROVIDER_TIMEOUT,
    PROVIDER_INCOMPLETE, DEADLINE, CANCELLED, STORE_UNAVAILABLE, SESSION_NOT_FOUND, ANSWER_IN_PROGRESS, NOT_FOUND,
)


class RelayError(Exception):
    """When anything in the relay fails in a way it knows how to report."""


class RequestRejected(RelayError):
    """When a request is invalid; it becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class ProviderError(RelayError):
    """When a provider call fails before or during its stream."""

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after  # seconds, when the provider said (retry-after-ms / retry-after)


class StoreError(RelayError):
    """When DynamoDB fails, or does not answer within the call's time budget, after botocore's own retries."""


def provider_error_for_status(provider: str, status: int, detail: str | None = None) -> ProviderError:
    """The error for an HTTP error answer, classified by status as the providers document them."""
    if status in (401, 403):
        # The provider's own message can quote part of the key: never pass it on.
        return ProviderError(
            PROVIDER_AUTH, f"{provider} rejected the API key: its key must be configured correctly", status=status
        )
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return ProviderError(PROVIDER_RATE_LIMITED, f"{provider} is rate limiting requests{suffix}", status=status)
    if status >= 500:
        return ProviderError(PROVIDER_UNAVAILABLE, f"{provider} is unavailable (HTTP {status}){suffix}", status=status)
    message = f"{provider} rejected the request (HTTP {status}){suffix}"
    return ProviderError(PROVIDER_BAD_REQUEST, message, status=status)
