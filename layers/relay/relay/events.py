"""The few normalised events every provider's stream is turned into.

A provider failure is not an event: it is raised as ``ProviderError``, so that no caller can forget to handle it.
"""

from __future__ import annotations

from dataclasses import dataclass


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
