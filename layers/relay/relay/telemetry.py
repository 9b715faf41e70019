"""Logs and metrics of chat turns, through Powertools.

Under the Lambda Web Adapter there is no handler to decorate, so each turn's metrics are built in their own
``EphemeralMetrics`` (no state shared between concurrent requests) and flushed at the end of the turn as one EMF line.
Nothing here ever receives prompt or answer text.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricResolution, MetricUnit

from relay import config

logger = Logger(service=config.resolve(config.SERVICE_NAME_ENV, config.DEFAULT_SERVICE_NAME))
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
    reasoning_tokens: int | None = None  # the provider's count, where it tells one apart
    time_to_first_reasoning_ms: float | None = None
    error_code: str | None = None
    client_disconnected: bool = False
    relay_overhead_ms: float | None = None
    retries: int = 0
    fallbacks: int = 0
    cold_start: bool = False


def _service_and_namespace() -> tuple[str, str]:
    return (config.resolve(config.SERVICE_NAME_ENV, config.DEFAULT_SERVICE_NAME),
            config.resolve(config.METRICS_NAMESPACE_ENV, config.DEFAULT_METRICS_NAMESPACE))


def publish_budget_refusal(period: str) -> None:
    """One EMF line counting a turn refused for a spent token budget (``period``: day or month), under [service]
    and [service, period]."""
    service, namespace = _service_and_namespace()
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    metrics.add_dimensions(service=service, period=period)
    metrics.add_metric(name="BudgetRefusals", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


def publish_turn_metrics(report: TurnReport) -> None:
    """Emit one EMF line with the turn's metrics under the dimension sets [service], [service, provider] and
    [service, provider, model]; a failed turn adds a line counting its error under [service, errorCode] and
    [service, provider, errorCode]."""
    service, namespace = _service_and_namespace()
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    metrics.add_dimensions(service=service, provider=report.provider)
    metrics.add_dimensions(service=service, provider=report.provider, model=report.model)

    completed = report.status == "complete"
    ms, count, high = MetricUnit.Milliseconds, MetricUnit.Count, MetricResolution.High
    turn: list[tuple[str, MetricUnit, float | None, MetricResolution]] = [
        ("Requests", count, 1, MetricResolution.Standard),
        ("StreamCompleted", count, 1 if completed else 0, MetricResolution.Standard),
        ("StreamErrors", count, 1 if report.error_code else 0, MetricResolution.Standard),
        ("ClientDisconnects", count, 1 if report.client_disconnected else 0, MetricResolution.Standard),
        ("StreamDuration", ms, report.duration_ms, MetricResolution.Standard),
        ("Retries", count, report.retries, MetricResolution.Standard),
        ("Fallbacks", count, report.fallbacks, MetricResolution.Standard),
        ("ColdStart", count, 1 if report.cold_start else 0, MetricResolution.Standard),
        ("RelayOverhead", ms, report.relay_overhead_ms, high),
        ("TimeToFirstToken", ms, report.ttft_ms, high),
        ("TimeToFirstReasoning", ms, report.time_to_first_reasoning_ms, high),
        ("TokensPerSecond", MetricUnit.CountPerSecond, report.tokens_per_second, MetricResolution.Standard),
        ("InputTokens", count, report.input_tokens, MetricResolution.Standard),
        ("OutputTokens", count, report.output_tokens, MetricResolution.Standard),
        ("ReasoningTokens", count, report.reasoning_tokens, MetricResolution.Standard),
    ]
    for name, unit, value, resolution in turn:
        if value is not None:  # what a turn never had (no first token, no usage) is left out, not sent as 0
            metrics.add_metric(name=name, unit=unit, value=value, resolution=resolution)
    metrics.flush_metrics()

    if report.error_code:
        errors = EphemeralMetrics(namespace=namespace, service=service)
        errors.add_dimension(name="errorCode", value=report.error_code)
        errors.add_dimensions(service=service, provider=report.provider, errorCode=report.error_code)
        errors.add_metric(name="StreamErrors", unit=MetricUnit.Count, value=1)
        errors.flush_metrics()
