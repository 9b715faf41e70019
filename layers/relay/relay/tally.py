"""What one turn has received, and what it adds up to: the stored answer's text, reasoning and metadata, and the
metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay import telemetry
from relay.errors import CANCELLED, DEADLINE, PROVIDER_INCOMPLETE, SESSION_NOT_FOUND, ProviderError
from relay.events import Finish, ProviderEvent, ReasoningRedacted, ReasoningSignature, Usage
from relay.providers.base import Exchange
from relay.records import COMPLETE, ERROR, INCOMPLETE, INTERRUPTED, StoredMessage

# Reasoning signatures kept with an answer, in all: Anthropic's are a few hundred characters each, and the answer's
# first item must still fit DynamoDB's 400 KB beside its 90,000 characters of text (store.MAX_ITEM_CHARS).
MAX_SIGNATURE_CHARS = 16_000
REASONING_IGNORED = "reasoning_ignored"  # a note: the session's reasoning option was left out of the request
REASONING_REDACTED = "reasoning_redacted"  # a note: the provider sent reasoning encrypted, which is not shown
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
    reasoning_parts: list[str] = field(default_factory=list)
    first_reasoning_at: float | None = None
    last_reasoning_at: float | None = None
    signatures: list[str] = field(default_factory=list)  # kept with the answer, never shown
    redacted_blocks: int = 0
    reasoning_ignored: str | None = None  # why the session's reasoning option was left out of the request
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

    def reasoning(self, text: str) -> None:
        """Count a reasoning delta."""
        self.last_reasoning_at = self.clock()
        self.reasoning_parts.append(text)
        if self.first_reasoning_at is None:
            self.first_reasoning_at = self.last_reasoning_at

    @property
    def first_delta_at(self) -> float | None:
        """When the provider first sent something to relay, answer or reasoning: it has been alive since."""
        return self.first_token_at if self.first_reasoning_at is None else self.first_reasoning_at

    def read_ended(self) -> None:
        """Marks the end of a network read's batch: the first one with text is left out of the rate."""
        if self.first_read_chars is None and self.parts:
            self.first_read_chars = sum(len(part) for part in self.parts)

    def note(self, event: ProviderEvent) -> None:
        if isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, ReasoningSignature):
            if sum(map(len, self.signatures)) + len(event.signature) <= MAX_SIGNATURE_CHARS:
                self.signatures.append(event.signature)
        elif isinstance(event, ReasoningRedacted):
            self.redacted_blocks += 1

    @property
    def status(self) -> str:
        if self.error is not None:
            return {PROVIDER_INCOMPLETE: INCOMPLETE, DEADLINE: INTERRUPTED, CANCELLED: INTERRUPTED,
                    SESSION_NOT_FOUND: INTERRUPTED}.get(self.error.code, ERROR)
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
    def time_to_first_reasoning_ms(self) -> float | None:
        return self._ms(self.first_reasoning_at)

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens if self.usage else len(self.parts)

    @property
    def reasoning_tokens(self) -> int | None:
        """The provider's count of the tokens it spent reasoning, when it tells one (and it is not 0)."""
        return self.usage.reasoning_tokens if self.usage and self.usage.reasoning_tokens else None

    @property
    def tokens_per_second(self) -> float | None:
        """The answer's speed, not diluted by a reasoning phase nor inflated by its tokens, nor by the first network
        read: the answer's tokens (the output count less the reasoning count) that came after the first read (its
        share of the text left out: those were generated before the first token) over the time from the first text
        delta to the last. A provider that counts its reasoning in the output with no count of its own (Anthropic,
        Bedrock) and streams it is measured over all of its deltas, reasoning and answer: its tokens and its time
        then cover the same span. None below ``MIN_RATE_SPAN_SECONDS``, and None when the provider's counts leave
        the answer no tokens (a reasoning count at or above the output count): no rate is better than a negative one."""
        if self.first_token_at is None or self.last_token_at is None or self.first_read_chars is None:
            return None
        first, last, tokens = self.first_token_at, self.last_token_at, self.output_tokens
        if self.reasoning_tokens is not None:
            tokens -= self.reasoning_tokens
        elif self.usage is not None and self.first_reasoning_at is not None and self.last_reasoning_at is not None:
            first, last = min(first, self.first_reasoning_at), max(last, self.last_reasoning_at)
        chars = sum(len(part) for part in self.parts)
        if last - first < MIN_RATE_SPAN_SECONDS or chars <= self.first_read_chars or tokens <= 0:
            return None
        return round(tokens * (chars - self.first_read_chars) / chars / (last - first), 3)

    def reply(self, placeholder: StoredMessage) -> StoredMessage:
        metadata: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "finishReason": self.finish_reason,
            "usage": {"inputTokens": self.usage.input_tokens, "outputTokens": self.usage.output_tokens,
                      "reasoningTokens": self.reasoning_tokens} if self.usage else None,
            "ttftMs": self.ttft_ms,
            "tokensPerSecond": self.tokens_per_second,
            "timeToFirstReasoningMs": self.time_to_first_reasoning_ms,
            "error": {"code": self.error.code, "message": self.error.message} if self.error else None,
            "attempts": self.attempts or None,
            "notes": self.notes or None,
        }
        return StoredMessage(placeholder.message_id, "ai", "".join(self.parts), self.status, placeholder.created_at,
                             _known(metadata), reasoning="".join(self.reasoning_parts),
                             reasoning_signatures=tuple(self.signatures))

    @property
    def notes(self) -> list[dict[str, str]]:
        """What the client should know about the answer that is no error: ``{"code", "message"}`` each."""
        notes = []
        if self.reasoning_ignored is not None:
            notes.append({"code": REASONING_IGNORED, "message": self.reasoning_ignored})
        if self.redacted_blocks:
            notes.append({"code": REASONING_REDACTED, "message": f"{self.redacted_blocks} reasoning block(s) came "
                          "encrypted by the provider's safety systems: they are not shown"})
        return notes

    def report(self) -> telemetry.TurnReport:
        return telemetry.TurnReport(
            provider=self.provider, model=self.model, status=self.outcome,
            duration_ms=(self.clock() - self.received_at) * 1000, ttft_ms=self.ttft_ms,
            tokens_per_second=self.tokens_per_second, input_tokens=self.usage.input_tokens if self.usage else None,
            output_tokens=self.output_tokens, reasoning_tokens=self.reasoning_tokens,
            time_to_first_reasoning_ms=self.time_to_first_reasoning_ms,
            error_code=self.error.code if self.error else self.store_failure,
            client_disconnected=self.disconnected, relay_overhead_ms=self._ms(self.sent_at),
            cold_start=self.cold_start, retries=self.retries, fallbacks=1 if self.fell_back else 0,
        )

    def _ms(self, at: float | None) -> float | None:
        """Milliseconds from the request's arrival to ``at``."""
        return _milliseconds(None if at is None else at - self.received_at)


def _known(values: dict[str, Any]) -> dict[str, Any]:
    """The values that are known (None is left out), nested objects too."""
    return {key: _known(value) if isinstance(value, dict) else value for key, value in values.items()
            if value is not None}


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
