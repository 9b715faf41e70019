"""Per-user limits, in a DynamoDB table of their own (rejected requests must leave the chat table untouched):
chat requests per minute, and streams at once.

    PK = USER#<userId>   SK = RATE#<window start>   ``requests``: a fixed-window counter, gone by TTL
                         SK = STREAMS               ``streams``: {leaseId: expiresAt} of the streams running now

A stream holds a lease while it runs, renewed every third of ``STREAM_LEASE_SECONDS`` and given back at its end;
the lease of a run that died (a crash, a timeout) expires within ``STREAM_LEASE_SECONDS`` and is freed by the next
request that finds the user at the limit. Turns, resumes and retries that join a turn are all streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import anyio
from ulid import ULID

from relay import telemetry
from relay.config import STREAM_LEASE_DEADLINE_MARGIN_SECONDS, STREAM_LEASE_SECONDS, Settings
from relay.dynamodb import TTL_ATTRIBUTE, DynamoDB, condition_failed, old_item
from relay.errors import RATE_LIMITED, RequestRejected, StoreError

__all__ = ["Lease", "Limits", "TooManyRequests", "held"]

WINDOW_SECONDS = 60
# Giving a lease back holds the end of its stream: during an outage it waits at most this long (the lease then
# expires by itself) instead of the store's whole budget.
RELEASE_TIMEOUT_SECONDS = 1.0
ACQUIRE_ATTEMPTS = 3  # concurrent requests of one user may race for the streams item; each race is tried again


class TooManyRequests(RequestRejected):
    """When a user is over a limit (429, with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, RATE_LIMITED, message, headers={"Retry-After": str(retry_after)})


@dataclass
class Lease:
    """One of a user's concurrent streams, held until ``release()``; it expires by itself if its run dies."""

    dynamodb: DynamoDB
    table: str
    user_id: str
    lease_id: str
    expires_at: int  # epoch seconds
    outlives_at: int  # the run's deadline plus a margin: no renewal goes past it

    async def renew(self) -> None:
        expires_at = min(int(time.time()) + STREAM_LEASE_SECONDS, self.outlives_at)
        if expires_at <= self.expires_at:
            return
        try:
            await self.dynamodb.call(
                "update_item", TableName=self.table, Key=_streams_key(self.user_id),
                UpdateExpression="SET streams.#lease = :expires",
                ConditionExpression="attribute_exists(streams.#lease)",
                ExpressionAttributeNames={"#lease": self.lease_id},
                ExpressionAttributeValues={":expires": {"N": str(expires_at)}})
        except StoreError as exc:
            if not condition_failed(exc):
                raise
            return  # freed as expired by another request: this stream is no longer counted
        self.expires_at = expires_at

    async def release(self) -> None:
        """Give the lease back; never raises (a lease that cannot be given back expires by itself)."""
        try:
            await self.dynamodb.call(
                "update_item", timeout=RELEASE_TIMEOUT_SECONDS, TableName=self.table, Key=_streams_key(self.user_id),
                UpdateExpression="REMOVE streams.#lease", ExpressionAttributeNames={"#lease": self.lease_id})
        except StoreError:
            telemetry.logger.warning("a stream lease could not be released; it expires by itself",
                                     extra={"lease_expires_at": self.expires_at})


async def held[T](events: AsyncGenerator[T, None], lease: Lease | None,
                  last: Callable[[T], bool] = lambda event: False) -> AsyncGenerator[T, None]:
    """``events``, while ``lease`` is renewed in the background; given back once they end, however they end, or
    once an event that is ``last`` for the client has been sent: what runs after it (a model-made title, while the
    stream stays open) is no answer the user waits for, and must not keep their next message out."""
    if lease is None:
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
        return
    renewing: asyncio.Future[None] | None = asyncio.ensure_future(_renew_while_running(lease))
    try:
        async for event in events:
            yield event
            if renewing is not None and last(event):
                renewing.cancel()
                renewing = None
                with anyio.CancelScope(shield=True):
                    await lease.release()
    finally:
        if renewing is not None:
            renewing.cancel()
        with anyio.CancelScope(shield=True):
            await events.aclose()
            if renewing is not None:
                await lease.release()


async def _renew_while_running(lease: Lease) -> None:
    while True:
        await asyncio.sleep(STREAM_LEASE_SECONDS / 3)
        try:
            await lease.renew()
        except StoreError:
            telemetry.logger.warning("a stream lease could not be renewed")


class Limits:
    def __init__(self, dynamodb: DynamoDB, settings: Settings) -> None:
        self._dynamodb = dynamodb
        self._table = settings.limits_table_name or ""
        self._per_minute = settings.requests_per_minute if self._table else 0
        self._streams = settings.concurrent_streams if self._table else 0
        self._function_timeout = settings.function_timeout_seconds

    @property
    def per_minute(self) -> int:
        """Chat requests a user may start a minute (0: no limit)."""
        return self._per_minute

    @property
    def streams(self) -> int:
        """Streams a user may hold at once (0: no limit)."""
        return self._streams

    async def admit(self, user_id: str, deadline_ms: int | None = None) -> Lease | None:
        """Count the request and take a stream lease that lives no longer than the run (``deadline_ms``, epoch
        milliseconds, as Lambda gives it), or raise TooManyRequests. The lease must be released."""
        now = time.time()
        if self._per_minute:
            window = int(now) - int(now) % WINDOW_SECONDS
            if not await self._count_request(user_id, window):
                retry_after = max(1, window + WINDOW_SECONDS - int(now))
                raise TooManyRequests(f"at most {self._per_minute} chat requests a minute", retry_after)
        if not self._streams:
            return None
        deadline = deadline_ms / 1000 if deadline_ms else now + self._function_timeout
        outlives_at = int(deadline) + STREAM_LEASE_DEADLINE_MARGIN_SECONDS
        lease = Lease(self._dynamodb, self._table, user_id, str(ULID()),
                      min(int(now) + STREAM_LEASE_SECONDS, outlives_at), outlives_at)
        if not await self._acquire(lease):
            raise TooManyRequests(f"at most {self._streams} answers can stream at once", 5)
        return lease

    async def _count_request(self, user_id: str, window_start: int) -> bool:
        """Count one request in the window; False (and nothing counted) when the limit is reached."""
        try:
            await self._dynamodb.call(
                "update_item", TableName=self._table,
                Key={"PK": {"S": f"USER#{user_id}"}, "SK": {"S": f"RATE#{window_start}"}},
                UpdateExpression="ADD #count :one SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames={"#count": "requests", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(self._per_minute)},
                                           ":ttl": {"N": str(window_start + 2 * WINDOW_SECONDS)}})
        except StoreError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    async def _acquire(self, lease: Lease) -> bool:
        """Add the lease unless the user holds the limit already; leases past their expiry are freed first."""
        key = _streams_key(lease.user_id)
        names = {"#lease": lease.lease_id}
        for _ in range(ACQUIRE_ATTEMPTS):
            try:
                await self._dynamodb.call(
                    "update_item", TableName=self._table, Key=key, UpdateExpression="SET streams.#lease = :expires",
                    ConditionExpression="attribute_exists(streams) AND size(streams) < :limit",
                    ExpressionAttributeNames=names, ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    ExpressionAttributeValues={":expires": {"N": str(lease.expires_at)},
                                               ":limit": {"N": str(self._streams)}})
                return True
            except StoreError as exc:
                if not condition_failed(exc):
                    raise
                streams = (old_item(exc) or {}).get("streams")
            if streams is None:
                if await self._first_lease(lease):
                    return True
                continue
            expired = {lease_id: expires for lease_id, expires in streams.items() if expires < time.time()}
            if not expired:
                return False
            await self._free(lease.user_id, expired)
        return False

    async def _first_lease(self, lease: Lease) -> bool:
        try:
            await self._dynamodb.call(
                "update_item", TableName=self._table, Key=_streams_key(lease.user_id),
                UpdateExpression="SET streams = :streams", ConditionExpression="attribute_not_exists(streams)",
                ExpressionAttributeValues={":streams": {"M": {lease.lease_id: {"N": str(lease.expires_at)}}}})
        except StoreError as exc:
            if condition_failed(exc):
                return False  # another request made it first
            raise
        return True

    async def _free(self, user_id: str, expired: dict[str, int]) -> None:
        """Remove leases that expired, each only if it still holds the expiry seen (not renewed meanwhile)."""
        names = {f"#e{index}": lease_id for index, lease_id in enumerate(expired)}
        values = {f":e{index}": {"N": str(expires)} for index, expires in enumerate(expired.values())}
        try:
            await self._dynamodb.call(
                "update_item", TableName=self._table, Key=_streams_key(user_id),
                UpdateExpression="REMOVE " + ", ".join(f"streams.{name}" for name in names),
                ConditionExpression=" AND ".join(f"streams.#e{i} = :e{i}" for i in range(len(expired))),
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except StoreError as exc:
            if not condition_failed(exc):
                raise


def _streams_key(user_id: str) -> dict[str, dict[str, str]]:
    return {"PK": {"S": f"USER#{user_id}"}, "SK": {"S": "STREAMS"}}
