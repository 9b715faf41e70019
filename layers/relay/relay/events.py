"""The few normalised events the relay deals in: what every provider's stream is turned into, and what a turn
yields to the wire encodings (SSE, plain text, the AI SDK's UI message stream).

A provider failure is not a provider event: it is raised as ``ProviderError``, so that no caller can forget to
handle it. A turn's failure is its last event, ``Failed``: by then the response is streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_TOKEN_COUNT", "Done", "Failed", "Finish", "ProviderEvent", "Reasoning", "ReasoningDelta",
           "ReasoningRedacted", "ReasoningSignature", "Started", "TextDelta", "Tokens", "TurnEvent", "Usage",
           "well_formed"]

# No answer comes near this many tokens (the longest a current model writes is ~128,000). A usage count past it, or
# below zero, is no count: 10**400 is valid JSON, yet no float holds it (the tokens per second divide by it), and
# DynamoDB stores numbers of 38 digits at most.
MAX_TOKEN_COUNT = 10**9


# What providers yield.
@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (or of its summary, as most providers send it), kept apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningSignature:
    """The provider's signature over a reasoning block (Anthropic's ``signature_delta``, Bedrock's
    ``reasoningContent.signature``): kept with the answer, never shown."""

    signature: str


@dataclass(frozen=True, slots=True)
class ReasoningRedacted:
    """A reasoning block the provider sent encrypted (Anthropic's ``redacted_thinking``): noted, never shown."""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int  # everything the model generated, its reasoning included (as every provider here bills it)
    reasoning_tokens: int | None = None  # the part of output_tokens spent reasoning, where the provider tells it


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


ProviderEvent = TextDelta | ReasoningDelta | Usage | Finish | ReasoningSignature | ReasoningRedacted


def well_formed(event: ProviderEvent) -> bool:
    """Whether an event holds what its type says: parsers read JSON, where any field can be any type or size."""
    if isinstance(event, TextDelta | ReasoningDelta):
        return isinstance(event.text, str)
    if isinstance(event, ReasoningSignature):
        return isinstance(event.signature, str)
    if isinstance(event, Finish):
        return isinstance(event.reason, str)
    if isinstance(event, Usage):
        counts = (event.input_tokens, event.output_tokens) + (
            () if event.reasoning_tokens is None else (event.reasoning_tokens,))
        return all(isinstance(count, int) and 0 <= count <= MAX_TOKEN_COUNT for count in counts)
    return True


# What a turn (or a client following an answer) yields.
@dataclass(frozen=True, slots=True)
class Started:
    user_message_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """The provider's deltas of one network read, each of them a token event for the client."""

    texts: list[str]


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The provider's reasoning deltas of one network read, each of them a reasoning event for the client."""

    texts: list[str]


@dataclass(frozen=True, slots=True)
class Done:
    message_id: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    tokens_per_second: float | None
    reasoning_tokens: int | None = None
    time_to_first_reasoning_ms: float | None = None

    def usage(self) -> dict[str, int | None]:
        """The usage as clients get it: reasoningTokens only where the provider counted any."""
        usage = {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens}
        return usage if self.reasoning_tokens is None else {**usage, "reasoningTokens": self.reasoning_tokens}


@dataclass(frozen=True, slots=True)
class Failed:
    code: str
    message: str


TurnEvent = Started | Reasoning | Tokens | Done | Failed
