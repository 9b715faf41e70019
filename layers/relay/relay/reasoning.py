"""A session's reasoning option, as a client asks for it: ``{"effort": "low" | "medium" | "high"}`` or
``{"budgetTokens": N}``. Checked in one function (``reasoning_option``, for creation and for any later update), and
told in both units, since providers take one or the other: OpenAI an effort, Anthropic, Gemini and Claude on Bedrock
a token budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.errors import RequestRejected

__all__ = ["EFFORTS", "EFFORT_BUDGET_TOKENS", "MAX_BUDGET_TOKENS", "MIN_BUDGET_TOKENS", "ReasoningOption",
           "reasoning_option"]

EFFORTS = ("low", "medium", "high")
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
        """An option stored by ``to_json`` (checked when it was given); None for anything else."""
        if isinstance(value, dict) and value.get("effort") in EFFORTS:
            return cls(effort=value["effort"])
        if isinstance(value, dict) and isinstance(value.get("budgetTokens"), int):
            return cls(budget_tokens=value["budgetTokens"])
        return None


def reasoning_option(value: Any) -> ReasoningOption | None:
    """The ``reasoning`` of a request body (None when absent or null); anything else is refused with a 422."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not value.keys() <= {"effort", "budgetTokens"}:
        raise _invalid('reasoning must be {"effort": "low" | "medium" | "high"} or {"budgetTokens": N}')
    if "effort" in value:
        if value["effort"] not in EFFORTS:
            raise _invalid(f"reasoning.effort must be one of: {', '.join(EFFORTS)}")
        return ReasoningOption(effort=value["effort"])
    budget = value["budgetTokens"]
    if isinstance(budget, bool) or not isinstance(budget, int) or not MIN_BUDGET_TOKENS <= budget <= MAX_BUDGET_TOKENS:
        raise _invalid(f"reasoning.budgetTokens must be a whole number from {MIN_BUDGET_TOKENS} to "
                       f"{MAX_BUDGET_TOKENS}")
    return ReasoningOption(budget_tokens=budget)


def _invalid(message: str) -> RequestRejected:
    return RequestRejected(422, "validation_error", message)
