"""X-Ray subsegments around the provider call and the store calls, through Powertools Tracer, when switched on.

Off (the default) neither Powertools Tracer nor the X-Ray SDK is imported: about 240 ms of cold start not paid.
On, Tracer also patches botocore, so every DynamoDB call gets a subsegment of its own.

Under the Lambda Web Adapter the app is a separate process: the X-Ray SDK finds the invocation's trace id in
``_X_AMZN_TRACE_ID`` only if the app puts it there, from the Lambda context the adapter forwards, per request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from relay import config

_tracer: Any = None


def enabled() -> bool:
    return config.resolve(config.TRACING_ENABLED_ENV, "false").strip().lower() == "true"


def start() -> None:
    """Create the tracer once per process (it patches botocore), if tracing is on."""
    global _tracer
    if enabled() and _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer()


def bind_invocation(trace_id: str | None) -> None:
    """Make this invocation's trace the parent of the subsegments that follow (one invocation at a time)."""
    if _tracer is not None and trace_id:
        os.environ[config.TRACE_ID_ENV] = trace_id


@contextmanager
def subsegment(name: str, **annotations: str) -> Iterator[None]:
    if _tracer is None:
        yield
        return
    with _tracer.provider.in_subsegment(name=name) as segment:
        for key, value in annotations.items():
            segment.put_annotation(key, value)
        yield
