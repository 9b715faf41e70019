"""What each user spends: input and output tokens and chat requests per UTC day and month, in the limits table,
and the token budgets checked against them.

    PK = USER#<userId>   SK = USAGE#<YYYY-MM>   inputTokens, outputTokens, requests      the month's totals
                                                inputTokens#DD, outputTokens#DD, requests#DD   day DD's
                                                expiresAt: the end of the month after (TTL)

One item per user and month holds both periods, so reading a user's spending is one GetItem (made alongside the
turn's one read: no round trip of its own before the provider request) and adding a turn's is one update, made a
part of the turn's final write (no write of its own). A day's counters start at nothing because their names carry
the day; a month's because the item does.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.config import Settings
from relay.dynamodb import TTL_ATTRIBUTE, DynamoDB
from relay.errors import BUDGET_EXCEEDED, RequestRejected

__all__ = ["BudgetExceeded", "Period", "Spending", "UsageLedger", "UserSpending", "estimated_tokens"]

COUNTERS = ("inputTokens", "outputTokens", "requests")
# A token is about 4 characters of English text (OpenAI's rule of thumb): the estimate of a request's input for a turn
# with no count from its provider (one stopped before the count came, which most providers send last, or a server
# that sends none), so that its input is not spent for free.
CHARS_PER_TOKEN = 4


def estimated_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


class BudgetExceeded(RequestRejected):
    """When a user has spent a day's or a month's token budget (429, with Retry-After until the period ends)."""

    def __init__(self, period: str, budget: int, retry_after: int) -> None:
        super().__init__(429, BUDGET_EXCEEDED, f"you have used this {period}'s budget of {budget:,} tokens; it "
                         f"starts again at 00:00 UTC {'tomorrow' if period == 'day' else 'on the 1st'}",
                         headers={"Retry-After": str(retry_after)})
        self.period = period


@dataclass(frozen=True, slots=True)
class Period:
    """The UTC day and month a moment falls in, and when each ends (epoch seconds)."""

    month: str  # YYYY-MM
    day: str  # DD
    day_ends_at: int
    month_ends_at: int

    @classmethod
    def at(cls, timestamp: float) -> Period:
        moment = datetime.fromtimestamp(timestamp, UTC)
        day_start = int(datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp())
        days_in_month = calendar.monthrange(moment.year, moment.month)[1]
        month_start = int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
        return cls(f"{moment.year:04d}-{moment.month:02d}", f"{moment.day:02d}", day_start + 86_400,
                   month_start + days_in_month * 86_400)


@dataclass(frozen=True, slots=True)
class Spending:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, int]:
        return {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens, "requests": self.requests}


@dataclass(frozen=True, slots=True)
class UserSpending:
    day: Spending
    month: Spending


class UsageLedger:
    """A user's spending in the limits table. Without a limits table nothing is kept (and no budget applies)."""

    def __init__(self, dynamodb: DynamoDB, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._dynamodb = dynamodb
        self._table = settings.limits_table_name or ""
        self.per_day = settings.token_budget_per_day if self._table else 0
        self.per_month = settings.token_budget_per_month if self._table else 0
        self._clock = clock  # epoch seconds: which day and month it is

    @property
    def kept(self) -> bool:
        return bool(self._table)

    @property
    def budgeted(self) -> bool:
        return bool(self.per_day or self.per_month)

    async def read(self, user_id: str, period: Period | None = None) -> UserSpending:
        """The user's spending this UTC day and month so far (or in ``period``'s)."""
        if not self._table:
            return UserSpending(Spending(), Spending())
        period = period or Period.at(self._clock())
        response = await self._dynamodb.call("get_item", TableName=self._table, Key=_key(user_id, period))
        item = {name: int(value["N"]) for name, value in (response.get("Item") or {}).items() if "N" in value}
        return UserSpending(Spending(*(item.get(f"{name}#{period.day}", 0) for name in COUNTERS)),
                     Spending(*(item.get(name, 0) for name in COUNTERS)))

    async def check(self, user_id: str) -> None:
        """Raise BudgetExceeded when the user is at or over a budget; writes nothing. No call when no budget is
        set. A turn that started under budget is never stopped: it may end over it."""
        if not self.budgeted:
            return
        now = self._clock()
        period = Period.at(now)
        usage = await self.read(user_id, period)
        now = int(now)
        if self.per_month and usage.month.tokens >= self.per_month:
            raise BudgetExceeded("month", self.per_month, max(1, period.month_ends_at - now))
        if self.per_day and usage.day.tokens >= self.per_day:
            raise BudgetExceeded("day", self.per_day, max(1, period.day_ends_at - now))

    def addition(self, user_id: str, input_tokens: int, output_tokens: int) -> dict[str, Any] | None:
        """One turn's spending as an ``Update`` of a TransactWriteItems (the turn's final write carries it); None
        without a limits table."""
        if not self._table:
            return None
        period = Period.at(self._clock())
        names, values, adds = {"#ttl": TTL_ATTRIBUTE}, {}, []
        for index, (name, amount) in enumerate(zip(COUNTERS, (input_tokens, output_tokens, 1), strict=True)):
            names[f"#m{index}"], names[f"#d{index}"] = name, f"{name}#{period.day}"
            values[f":v{index}"] = {"N": str(amount)}
            adds.append(f"#m{index} :v{index}, #d{index} :v{index}")
        # Kept through the month after, so that last month's totals can still be read; then DynamoDB removes it.
        values[":ttl"] = {"N": str(Period.at(period.month_ends_at).month_ends_at)}
        return {"TableName": self._table, "Key": _key(user_id, period), "ExpressionAttributeNames": names,
                "UpdateExpression": "ADD " + ", ".join(adds) + " SET #ttl = :ttl", "ExpressionAttributeValues": values}

    async def add(self, user_id: str, input_tokens: int, output_tokens: int, timeout: float | None = None) -> None:
        """The same as ``addition``, as a write of its own (within ``timeout``, the store's budget by default): for
        a turn whose final write did not land."""
        update = self.addition(user_id, input_tokens, output_tokens)
        if update is not None:
            await self._dynamodb.call("update_item", timeout=timeout, **update)


def _key(user_id: str, period: Period) -> dict[str, Any]:
    return {"PK": {"S": f"USER#{user_id}"}, "SK": {"S": f"USAGE#{period.month}"}}
