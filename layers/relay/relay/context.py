"""What the Lambda Web Adapter tells the app about the invocation, from the headers it adds to each request.

``x-amzn-lambda-context`` is the Lambda context as JSON (``request_id``, ``deadline`` in epoch milliseconds, ...);
``x-amzn-request-context`` is the function URL's request context (``requestId``, ``http``, ...). Outside Lambda
neither exists and a local id stands in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ulid import ULID

LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    received_at: float  # time.perf_counter() when the request reached the app
    deadline_ms: int | None = None  # epoch milliseconds at which Lambda stops the function
    trace_id: str | None = None  # the X-Ray trace header of the invocation

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], received_at: float | None = None) -> Invocation:
        lambda_context = _json_header(headers, LAMBDA_CONTEXT_HEADER)
        request_context = _json_header(headers, REQUEST_CONTEXT_HEADER)
        request_id = lambda_context.get("request_id") or request_context.get("requestId")
        deadline = lambda_context.get("deadline")
        return cls(
            request_id=str(request_id) if request_id else f"local-{ULID()}",
            received_at=time.perf_counter() if received_at is None else received_at,
            deadline_ms=int(deadline) if isinstance(deadline, int | float) else None,
            trace_id=lambda_context.get("xray_trace_id") or None,
        )


def _json_header(headers: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = headers.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
