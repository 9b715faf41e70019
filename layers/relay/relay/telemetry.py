"""Logs and metrics of chat turns, through Powertools.

Under the Lambda Web Adapter there is no handler to decorate, so each turn's metrics are built in their own
``EphemeralMetrics`` (no state shared between concurrent requests) and flushed at the end of the turn as one EMF line.
Nothing here ever receives prompt or answer text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricResolution, MetricUnit

SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_SERVICE = "chat-relay"
DEFAULT_NAMESPACE = "ChatRelay"

logger = Logger(service=os.environ.get(SERVICE_ENV) or DEFAULT_SERVICE)
_cold_start = True


def take_cold_start() -> bool:
    """True for the first chat turn this process serves, False ever after."""
    global _cold_start
    cold, _cold_start = _cold_start, False
    return cold


@dataclass(frozen=True, slots=True)
class TurnReport:
    provider: str
    model: str
    status: str  # a message status: complete | error | incomplete | interrupted
    duration_ms: float
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_code: str | None = None
    client_disconnected: bool = False
    relay_overhead_ms: float | None = None
    retries: int = 0
    fallbacks: int = 0
    cold_start: bool = False


def publish_turn_metrics(report: TurnReport) -> None:
    """Emit one EMF line with the turn's metrics under the dimension sets [service], [service, provider] and
    [service, provider, model]; a failed turn adds a line counting its error under [service, errorCode] and
    [service, provider, errorCode]."""
    service = os.environ.get(SERVICE_ENV) or DEFAULT_SERVICE
    namespace = os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    metrics.add_dimensions(service=service, provider=report.provider)
    metrics.add_dimensions(service=service, provider=report.provider, model=report.model)

    completed = report.status == "complete"
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="StreamCompleted", unit=MetricUnit.Count, value=1 if completed else 0)
    metrics.add_metric(name="StreamErrors", unit=MetricUnit.Count, value=1 if report.error_code else 0)
    metrics.add_metric(name="ClientDisconnects", unit=MetricUnit.Count, value=1 if report.client_disconnected else 0)
    metrics.add_metric(name="StreamDuration", unit=MetricUnit.Milliseconds, value=report.duration_ms)
    metrics.add_metric(name="Retries", unit=MetricUnit.Count, value=report.retries)
    metrics.add_metric(name="Fallbacks", unit=MetricUnit.Count, value=report.fallbacks)
    metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1 if report.cold_start else 0)
    if report.relay_overhead_ms is not None:
        metrics.add_metric(
            name="RelayOverhead",
            unit=MetricUnit.Milliseconds,
            value=report.relay_overhead_ms,
            resolution=MetricResolution.High,
        )
    if report.ttft_ms is not None:
        metrics.add_metric(
            name="TimeToFirstToken",
            unit=MetricUnit.Milliseconds,
            value=report.ttft_ms,
            resolution=MetricResolution.High,
        )
    if report.tokens_per_second is not None:
        metrics.add_metric(name="TokensPerSecond", unit=MetricUnit.CountPerSecond, value=report.tokens_per_second)
    if report.input_tokens is not None:
        metrics.add_metric(name="InputTokens", unit=MetricUnit.Count, value=report.input_tokens)
    if report.output_tokens is not None:
        metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=report.output_tokens)
    metrics.flush_metrics()

    if report.error_code:
        errors = EphemeralMetrics(namespace=namespace, service=service)
        errors.add_dimension(name="errorCode", value=report.error_code)
        errors.add_dimensions(service=service, provider=report.provider, errorCode=report.error_code)
        errors.add_metric(name="StreamErrors", unit=MetricUnit.Count, value=1)
        errors.flush_metrics()
