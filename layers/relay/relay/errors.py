"""Exceptions of the relay.

    RelayError
    ├── RequestRejected   a request is refused before anything is streamed or stored (a 4xx)
    ├── ProviderError     a provider failed: HTTP error, error event, cut stream, timeout, unreachable
    └── StoreError        DynamoDB failed, or did not answer within its time budget, after botocore's retries

``ProviderError.code`` is the stable code the client sees in ``event: error``; a ``StoreError`` reaches the client
as ``store_unavailable`` (a 503 before streaming, an ``event: error`` after). Messages never carry API keys or
prompt text.
"""

from __future__ import annotations

# ProviderError codes.
PROVIDER_AUTH = "provider_auth"
PROVIDER_RATE_LIMITED = "provider_rate_limited"
PROVIDER_UNAVAILABLE = "provider_unavailable"
PROVIDER_BAD_REQUEST = "provider_bad_request"
PROVIDER_ERROR = "provider_error"
PROVIDER_TIMEOUT = "provider_timeout"
PROVIDER_INCOMPLETE = "provider_incomplete"
DEADLINE = "deadline"  # the function's time limit is near: the turn stops and stores what it has
CANCELLED = "cancelled"  # someone asked to stop this answer (POST .../messages/{messageId}/cancel)
# The store's code, in a 503 before streaming and in ``event: error`` after.
STORE_UNAVAILABLE = "store_unavailable"
SESSION_NOT_FOUND = "session_not_found"  # a 404, or ``event: error`` when the session is deleted under a turn
BUDGET_EXCEEDED = "budget_exceeded"  # a 429: the user has spent a day's or a month's token budget
# A regenerate (409, or ``event: error``) while the answer it would replace is still being generated or replaced.
ANSWER_IN_PROGRESS = "answer_in_progress"
# Image attachments (relay/attachments.py): a 404 for one that is not in the session (or not uploaded), a 422 for one
# too large, one whose bytes are no image the relay takes (whatever its name says), a model that takes none, or a
# deployment with no bucket.
ATTACHMENT_NOT_FOUND = "attachment_not_found"
ATTACHMENT_TOO_LARGE = "attachment_too_large"
ATTACHMENT_NOT_AN_IMAGE = "attachment_not_an_image"
IMAGES_NOT_SUPPORTED = "images_not_supported"
ATTACHMENTS_NOT_CONFIGURED = "attachments_not_configured"


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
