"""A session's reasoning option, as a client asks for it: ``{"effort": "low" | "medium" | "high"}`` or
``{"budgetTokens": N}``, checked against the API's schema (relay/api.py) when a session is created or changed, and
told in both units, since providers take one or the other: OpenAI an effort, Anthropic, Gemini and Claude on Bedrock
a token budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["EFFORTS", "EFFORT_BUDGET_TOKENS", "MAX_BUDGET_TOKENS", "MIN_BUDGET_TOKENS", "Effort", "ReasoningOption"]

Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[str, ...] = get_args(Effort)
# Google's own translation of OpenAI's efforts into Gemini thinking budgets (the Gemini API's OpenAI compatibility:
# low 1K, medium 8K, high 24K tokens). The one published mapping between the two units, used both ways here.
EFFORT_BUDGET_TOKENS = {"low": 1024, "medium": 8192, "high": 24_576}
MIN_BUDGET_TOKENS = 1024  # Anthropic refuses a smaller thinking.budget_tokens
MAX_BUDGET_TOKENS = 24_576  # Gemini 2.5 Flash's largest thinkingBudget (Pro's is 32,768): every provider takes it


@dataclass(frozen=True, slots=True)
class ReasoningOption:
    """Exactly one of ``effort`` and ``budget_tokens`` is set."""

    effort: str | None = None
    budget_tokens: int | None = None

    @property
    def budget(self) -> int:
        """The option as a token budget: the one given, or the effort's."""
        return self.budget_tokens if self.budget_tokens is not None else EFFORT_BUDGET_TOKENS[self.effort or "medium"]

    @property
    def level(self) -> str:
        """The option as an effort: the one given, or the least whose budget covers the tokens given."""
        if self.effort is not None:
            return self.effort
        return next((effort for effort in EFFORTS if self.budget <= EFFORT_BUDGET_TOKENS[effort]), EFFORTS[-1])

    def to_json(self) -> dict[str, Any]:
        """The option as the client gave it (and as it is stored)."""
        return {"effort": self.effort} if self.effort is not None else {"budgetTokens": self.budget_tokens}

    @classmethod
    def from_json(cls, value: Any) -> ReasoningOption | None:
        """An option as a client gives it and ``to_json`` stores it (checked when it was given); None for anything
        else."""
        if isinstance(value, dict) and value.get("effort") in EFFORTS:
            return cls(effort=value["effort"])
        if isinstance(value, dict) and isinstance(value.get("budgetTokens"), int):
            return cls(budget_tokens=value["budgetTokens"])
        return None

