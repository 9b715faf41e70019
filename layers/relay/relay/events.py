"""The few normalised events the relay deals in: what every provider's stream is turned into, and what a turn
yields to the wire encodings (SSE, plain text, the AI SDK's UI message stream).

A provider failure is not a provider event: it is raised as ``ProviderError``, so that no caller can forget to
handle it. A turn's failure is its last event, ``Failed``: by then the response is streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Done", "Failed", "Finish", "ProviderEvent", "Started", "TextDelta", "Tokens", "TurnEvent", "Usage"]


# What providers yield.
@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


ProviderEvent = TextDelta | Usage | Finish


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
class Done:
    message_id: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    tokens_per_second: float | None


@dataclass(frozen=True, slots=True)
class Failed:
    code: str
    message: str


TurnEvent = Started | Tokens | Done | Failed
