"""What one turn has received, and what it adds up to: the stored answer's text and metadata, and the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay import telemetry
from relay.errors import CANCELLED, DEADLINE, PROVIDER_INCOMPLETE, ProviderError
from relay.events import Finish, ProviderEvent, Usage
from relay.providers import Exchange
from relay.records import COMPLETE, ERROR, INCOMPLETE, INTERRUPTED, StoredMessage

# The shortest span of deltas a rate is given for: a read's arrival is known to about one gap between reads (~25 ms
# from a provider streaming 40 tokens/s), which is 10% of this. Shorter answers, one read above all (5 tokens gave
# 1,152,870 tokens/s over a span of microseconds), get no rate rather than a wild one.
MIN_RATE_SPAN_SECONDS = 0.25


@dataclass
class Tally:
    """What one turn has received so far, and what it adds up to: the stored answer and the metrics report."""

    provider: str
    model: str
    received_at: float
    clock: Callable[[], float]
    cold_start: bool = False
    parts: list[str] = field(default_factory=list)
    sent_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error: ProviderError | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)  # the ones that failed before the answer began
    retries: int = 0
    fell_back: bool = False
    cut_off: bool = False  # the turn was stopped before its provider finished
    disconnected: bool = False  # the client went away (the turn may still have finished)
    store_failure: str | None = None  # an error code: the message or the answer could not be stored
    exchange: Exchange | None = None  # how the answering request's HTTP exchange went
    first_read_chars: int | None = None  # the text of the answer's first network read, once it has ended

    def request_sent(self) -> None:
        self.sent_at = self.clock()

    def token(self, text: str) -> bool:
        """Count a delta; True for the first one."""
        self.last_token_at = self.clock()
        self.parts.append(text)
        if self.first_token_at is None:
            self.first_token_at = self.last_token_at
            return True
        return False

    def read_ended(self) -> None:
        """Marks the end of a network read's batch: the first one with text is left out of the rate."""
        if self.first_read_chars is None and self.parts:
            self.first_read_chars = sum(len(part) for part in self.parts)

    def note(self, event: ProviderEvent) -> None:
        if isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason

    @property
    def status(self) -> str:
        if self.error is not None:
            return {PROVIDER_INCOMPLETE: INCOMPLETE, DEADLINE: INTERRUPTED, CANCELLED: INTERRUPTED}.get(
                self.error.code, ERROR)
        return INTERRUPTED if self.cut_off else COMPLETE

    @property
    def outcome(self) -> str:
        """The status the metrics report: the stored status, or an error when the store failed the turn."""
        return ERROR if self.store_failure is not None and self.error is None else self.status

    @property
    def ttft_ms(self) -> float | None:
        return self._ms(self.first_token_at)

    @property
    def connect_ms(self) -> float | None:
        return _milliseconds(self.exchange.connect_seconds) if self.exchange else None

    @property
    def first_byte_ms(self) -> float | None:
        return _milliseconds(self.exchange.first_byte_seconds) if self.exchange else None

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens if self.usage else len(self.parts)

    @property
    def tokens_per_second(self) -> float | None:
        """The output tokens that came after the first network read (its share of the text left out: those were
        generated before the first token) over the time from the first delta to the last; None below
        ``MIN_RATE_SPAN_SECONDS``."""
        if self.first_token_at is None or self.last_token_at is None or self.first_read_chars is None:
            return None
        span = self.last_token_at - self.first_token_at
        chars = sum(len(part) for part in self.parts)
        if span < MIN_RATE_SPAN_SECONDS or chars <= self.first_read_chars:
            return None
        return round(self.output_tokens * (chars - self.first_read_chars) / chars / span, 3)

    def reply(self, placeholder: StoredMessage) -> StoredMessage:
        metadata: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "finishReason": self.finish_reason,
            "usage": {"inputTokens": self.usage.input_tokens, "outputTokens": self.usage.output_tokens}
            if self.usage else None,
            "ttftMs": self.ttft_ms,
            "tokensPerSecond": self.tokens_per_second,
            "error": {"code": self.error.code, "message": self.error.message} if self.error else None,
            "attempts": self.attempts or None,
        }
        return StoredMessage(placeholder.message_id, "ai", "".join(self.parts), self.status, placeholder.created_at,
                             {key: value for key, value in metadata.items() if value is not None})

    def report(self) -> telemetry.TurnReport:
        return telemetry.TurnReport(
            provider=self.provider, model=self.model, status=self.outcome,
            duration_ms=(self.clock() - self.received_at) * 1000, ttft_ms=self.ttft_ms,
            tokens_per_second=self.tokens_per_second, input_tokens=self.usage.input_tokens if self.usage else None,
            output_tokens=self.output_tokens, error_code=self.error.code if self.error else self.store_failure,
            client_disconnected=self.disconnected, relay_overhead_ms=self._ms(self.sent_at),
            cold_start=self.cold_start, retries=self.retries, fallbacks=1 if self.fell_back else 0,
        )

    def _ms(self, at: float | None) -> float | None:
        """Milliseconds from the request's arrival to ``at``."""
        return _milliseconds(None if at is None else at - self.received_at)


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
