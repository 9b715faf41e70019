"""Per-user limits, stored in DynamoDB: chat requests per minute (a fixed-window counter with the window in its
key) and streams running at once (leases that expire by themselves if a run dies)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ulid import ULID

from relay.config import STREAM_LEASE_SECONDS, Settings
from relay.errors import RequestRejected
from relay.store import ChatStore

WINDOW_SECONDS = 60


class TooManyRequests(RequestRejected):
    """When a user is over a limit (429, with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, "rate_limited", message, headers={"Retry-After": str(retry_after)})


@dataclass
class Lease:
    store: ChatStore
    table: str
    user_id: str
    lease_id: str
    expires_at: int

    async def release(self) -> None:
        await self.store.release_stream(self.table, self.user_id, self.lease_id, self.expires_at)


class Limits:
    def __init__(self, store: ChatStore, settings: Settings) -> None:
        self._store = store
        self._table = settings.limits_table_name
        self._per_minute = settings.requests_per_minute if self._table else 0
        self._streams = settings.concurrent_streams if self._table else 0

    async def admit(self, user_id: str) -> Lease | None:
        """Count the request and take a stream lease, or raise TooManyRequests; the lease must be released."""
        now = time.time()
        if self._per_minute and self._table:
            window = int(now) - int(now) % WINDOW_SECONDS
            if not await self._store.count_request(self._table, user_id, window, WINDOW_SECONDS, self._per_minute):
                retry_after = max(1, window + WINDOW_SECONDS - int(now))
                raise TooManyRequests(f"at most {self._per_minute} chat requests a minute", retry_after)
        if self._streams and self._table:
            lease = Lease(self._store, self._table, user_id, str(ULID()), int(now) + STREAM_LEASE_SECONDS)
            if not await self._store.acquire_stream(self._table, user_id, lease.lease_id, lease.expires_at,
                                                    self._streams):
                raise TooManyRequests(f"at most {self._streams} answers can stream at once", 5)
            return lease
        return None
