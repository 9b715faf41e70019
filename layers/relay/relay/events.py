"""The few normalised events the relay deals in: what every provider's stream is turned into, and what a turn
yields to the wire encodings (SSE, plain text, the AI SDK's UI message stream).

A provider failure is not a provider event: it is raised as ``ProviderError``, so that no caller can forget to
handle it. A turn's failure is its last event, ``Failed``: by then the response is streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Done", "Failed", "Finish", "ProviderEvent", "Reasoning", "ReasoningDelta", "ReasoningRedacted",
           "ReasoningSignature", "Started", "TextDelta", "Tokens", "TurnEvent", "Usage"]


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
