"""What the Lambda Web Adapter tells the app about the invocation, from the headers it adds to each request.

``x-amzn-lambda-context`` is the Lambda context as JSON (``request_id``, ``deadline`` in epoch milliseconds, ...);
``x-amzn-request-context`` is the function URL's request context (``requestId``, ``http``, ...). Outside Lambda
neither exists and a local id stands in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ulid import ULID

from relay import json_input

LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
MAX_FUNCTION_TIMEOUT_SECONDS = 900  # Lambda's longest: a deadline further away than this is no Lambda's
MAX_ID_CHARS = 256  # request ids are UUIDs (36), X-Ray trace headers under 100


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    received_at: float  # time.perf_counter() when the request reached the app
    deadline_ms: int | None = None  # epoch milliseconds at which Lambda stops the function
    trace_id: str | None = None  # the X-Ray trace header of the invocation

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], received_at: float | None = None) -> Invocation:
        """What the headers say, where it makes sense: on Lambda the adapter writes them, but a direct caller of the
        app can send anything (JSON nested thousands deep, a deadline of 1e999), and that must not be a 500."""
        lambda_context = _json_header(headers, LAMBDA_CONTEXT_HEADER)
        request_context = _json_header(headers, REQUEST_CONTEXT_HEADER)
        request_id = _text(lambda_context.get("request_id")) or _text(request_context.get("requestId"))
        return cls(
            request_id=request_id or f"local-{ULID()}",
            received_at=time.perf_counter() if received_at is None else received_at,
            deadline_ms=_deadline_ms(lambda_context.get("deadline")),
            trace_id=_text(lambda_context.get("xray_trace_id")),
        )


def _json_header(headers: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = headers.get(name)
    if not raw:
        return {}
    try:
        value = json_input.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """An id as text: a string of printable ASCII (it goes into logs, and the trace id into an environment
    variable, where a NUL is an error), else nothing."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isascii() and value.isprintable():
        return value
    return None


def _deadline_ms(value: Any) -> int | None:
    """Epoch milliseconds, or nothing when no Lambda could have said it: not a number, or not within Lambda's
    longest timeout from now. The comparison also refuses what JSON can spell and the turn could not use: 1e999
    (infinity), NaN, and 10**400 (no float division takes it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    latest = (time.time() + MAX_FUNCTION_TIMEOUT_SECONDS) * 1000
    return int(value) if 0 < value <= latest else None
