"""Reading one provider's stream under the turn's clocks: the first-token and idle timeouts, the function's
deadline, and the checkpoints that fall due while it waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from relay import config
from relay.errors import DEADLINE, PROVIDER_TIMEOUT, ProviderError
from relay.events import ProviderEvent

CHECKPOINT_RETRY_SECONDS = 0.05  # how soon to try a checkpoint again while the first write is still under way


@dataclass(frozen=True, slots=True)
class Timeouts:
    first_token: float = config.DEFAULT_FIRST_TOKEN_TIMEOUT_SECONDS
    idle: float = config.DEFAULT_IDLE_TIMEOUT_SECONDS
    deadline_margin: float = config.DEFAULT_DEADLINE_MARGIN_SECONDS
    function_timeout: float = config.DEFAULT_FUNCTION_TIMEOUT_SECONDS  # the deadline when Lambda gives none
    checkpoint: float = config.DEFAULT_CHECKPOINT_SECONDS

    @classmethod
    def from_settings(cls, settings: config.Settings) -> Timeouts:
        return cls(settings.first_token_timeout_seconds, settings.idle_timeout_seconds,
                   settings.deadline_margin_seconds, settings.function_timeout_seconds, settings.checkpoint_seconds)


class ProviderReader:
    """Waits for the provider's next batch while keeping the turn's clocks: the first-token and idle timeouts,
    the deadline, and a checkpoint every ``timeouts.checkpoint`` seconds even while the provider is silent (which
    is also when a request to stop is noticed). The provider is read by a task of its own into a queue, so that
    waking up for a checkpoint does not disturb the read, and batches that have arrived are taken without waiting."""

    def __init__(self, stream: AsyncIterator[list[ProviderEvent]], provider: str, timeouts: Timeouts,
                 stop_at: float, clock: Callable[[], float], checkpoint: Callable[[], Awaitable[bool]]) -> None:
        self._stream = stream
        self._provider = provider
        self._timeouts = timeouts
        self._stop_at = stop_at
        self._clock = clock
        self._checkpoint = checkpoint
        self._batches: asyncio.Queue[list[ProviderEvent] | BaseException | None] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._next_checkpoint = clock() + timeouts.checkpoint

    async def _read(self) -> None:
        try:
            async for batch in self._stream:
                self._batches.put_nowait(batch)
            self._batches.put_nowait(None)
        except Exception as exc:  # handed to the turn, in order, after the batches before it
            self._batches.put_nowait(exc)

    def start(self) -> None:
        """Sends the request: the provider is read from now on, whether or not anyone waits for it yet."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._read())

    async def next(self, *, waiting_for_first: bool) -> list[ProviderEvent] | None:
        self.start()
        waiting = self._timeouts.first_token if waiting_for_first else self._timeouts.idle
        give_up_at = min(self._clock() + waiting, self._stop_at)
        while True:
            if self._clock() >= self._next_checkpoint:
                done = await self._checkpoint()
                wait = self._timeouts.checkpoint if done else CHECKPOINT_RETRY_SECONDS
                self._next_checkpoint = self._clock() + wait
            if not self._batches.empty():
                return self._unpack(self._batches.get_nowait())
            wake_at = min(give_up_at, self._next_checkpoint)
            try:
                async with asyncio.timeout(max(0.0, wake_at - self._clock())):
                    return self._unpack(await self._batches.get())
            except TimeoutError:
                pass
            if self._clock() >= give_up_at:
                if give_up_at >= self._stop_at:
                    raise ProviderError(DEADLINE, "the function's time limit is near: the answer so far is stored")
                raise ProviderError(PROVIDER_TIMEOUT, f"{self._provider} sent nothing for {waiting:g} s")

    @staticmethod
    def _unpack(item: list[ProviderEvent] | BaseException | None) -> list[ProviderEvent] | None:
        if isinstance(item, BaseException):
            raise item
        return item

    def checkpoint_soon(self) -> None:
        self._next_checkpoint = self._clock()

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        await self._stream.aclose()  # type: ignore[attr-defined]
