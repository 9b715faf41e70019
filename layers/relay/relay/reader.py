"""Reading one provider's stream under the turn's clocks: the first-token and idle timeouts, the function's
deadline, and the checkpoints that fall due while it waits. What the turn gets from it is well formed, whatever the
provider module yields or raises: events of the types they name, text UTF-8 can encode, and ``ProviderError``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from relay import config, telemetry
from relay.errors import DEADLINE, PROVIDER_ERROR, PROVIDER_TIMEOUT, ProviderError
from relay.events import Finish, ProviderEvent, ReasoningDelta, TextDelta, well_formed

__all__ = ["ProviderReader", "Timeouts"]

_CHECKPOINTED = object()  # put in the reader's queue when a checkpoint has finished, to wake the reader up
_REPLACEMENT = "\ufffd"  # what stands for half a character, as a UTF-8 decoder's errors="replace" puts it


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
    is also when a request to stop is noticed: the checkpoint raises ``ProviderError``).

    The provider is read by a task of its own into a queue, so that batches that have arrived are taken without
    waiting; a checkpoint runs in a task of its own too, so a slow or hung store never holds a batch back. One
    checkpoint is in flight at a time; one that fails is simply followed by the next."""

    def __init__(self, stream: AsyncIterator[list[ProviderEvent]], provider: str, timeouts: Timeouts,
                 stop_at: float, clock: Callable[[], float], checkpoint: Callable[[], Awaitable[None]]) -> None:
        self._stream = stream
        self._provider = provider
        self._timeouts = timeouts
        self._stop_at = stop_at
        self._clock = clock
        self._checkpoint = checkpoint
        self._queue: asyncio.Queue[Any] = asyncio.Queue()  # batches, then None or an exception; _CHECKPOINTED
        self._pump: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._next_checkpoint = clock() + timeouts.checkpoint

    async def _read(self) -> None:
        """Hands the turn, in order, each batch and then the end of the stream or a ``ProviderError``: whatever a
        provider module yields or raises (a malformed event, a bug of its own), the turn gets text and then an
        error it handles, and the client a terminal event, never a cut stream."""
        characters = _WholeCharacters()
        end: ProviderError | None = None
        try:
            async for batch in self._stream:
                if characters.holding or not _plain_text(batch):  # the usual batch is checked at a glance
                    readable = list(itertools.takewhile(well_formed, batch))
                    if len(readable) < len(batch):
                        if readable:
                            self._queue.put_nowait(characters.feed(readable))
                        raise ProviderError(PROVIDER_ERROR, f"{self._provider} sent an event the relay cannot read")
                    batch = characters.feed(batch)
                self._queue.put_nowait(batch)
        except ProviderError as exc:
            end = exc
            end.message = _encodable(exc.message)  # a provider's own words may be in it
        except Exception as exc:
            end = ProviderError(PROVIDER_ERROR, f"{self._provider} failed in a way the relay cannot read "
                                                f"({type(exc).__name__})")
            end.__cause__ = exc
        if rest := characters.finish():
            self._queue.put_nowait(rest)
        self._queue.put_nowait(end)

    def start(self) -> None:
        """Sends the request: the provider is read from now on, whether or not anyone waits for it yet."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._read())

    async def next(self, *, waiting_for_first: bool) -> list[ProviderEvent] | None:
        self.start()
        waiting = self._timeouts.first_token if waiting_for_first else self._timeouts.idle
        give_up_at = min(self._clock() + waiting, self._stop_at)
        while True:
            self._checkpoint_if_due()
            if self._queue.empty():
                wake_at = give_up_at if self._checkpointing else min(give_up_at, self._next_checkpoint)
                try:
                    async with asyncio.timeout(max(0.0, wake_at - self._clock())):
                        item = await self._queue.get()
                except TimeoutError:
                    if self._clock() < give_up_at:
                        continue
                    if give_up_at >= self._stop_at:
                        raise ProviderError(DEADLINE, "the function's time limit is near: the answer so far is "
                                                      "stored") from None
                    raise ProviderError(PROVIDER_TIMEOUT, f"{self._provider} sent nothing for {waiting:g} s") from None
            else:
                item = self._queue.get_nowait()
            if item is _CHECKPOINTED:
                self._checkpoint_finished()
                continue
            if isinstance(item, BaseException):
                raise item
            return item  # type: ignore[no-any-return]

    def _checkpoint_if_due(self) -> None:
        if self._checkpointing is None and self._clock() >= self._next_checkpoint:
            self._checkpointing = asyncio.ensure_future(self._checkpoint())
            self._checkpointing.add_done_callback(lambda _: self._queue.put_nowait(_CHECKPOINTED))

    def _checkpoint_finished(self) -> None:
        done, self._checkpointing = self._checkpointing, None
        self._next_checkpoint = self._clock() + self._timeouts.checkpoint
        failure = done.exception() if done is not None and not done.cancelled() else None
        if isinstance(failure, ProviderError):
            raise failure
        if failure is not None:
            telemetry.logger.warning("a checkpoint failed; the next one carries the text",
                                     exc_info=(type(failure), failure, failure.__traceback__))

    def checkpoint_soon(self) -> None:
        self._next_checkpoint = self._clock()

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        if self._checkpointing is not None:  # left to land (or not): a checkpoint after the final write is a no-op
            self._checkpointing.add_done_callback(_retrieve)
        await self._stream.aclose()  # type: ignore[attr-defined]


class _WholeCharacters:
    """What a provider says, as text UTF-8 can encode: the client's stream and DynamoDB both need it, and JSON can
    spell half a character, a UTF-16 surrogate ("\\ud83d"). A server that cuts its text in UTF-16 units sends an
    emoji's two halves in two deltas: a high half that ends a delta waits for the next one. A half without its
    other half becomes U+FFFD, as a decoder puts for bytes it cannot read; in a finish reason or an error message
    too. No I/O."""

    def __init__(self) -> None:
        # The high surrogate that ended the last delta, of the answer and of the reasoning apart: the two streams
        # interleave, and one's half never belongs to the other.
        self._half: dict[type[TextDelta] | type[ReasoningDelta], str] = {TextDelta: "", ReasoningDelta: ""}

    @property
    def holding(self) -> bool:
        return any(self._half.values())

    def feed(self, batch: list[ProviderEvent]) -> list[ProviderEvent]:
        return [whole for event in batch if (whole := self._whole(event)) is not None]

    def finish(self) -> list[ProviderEvent]:
        halves, self._half = self._half, {TextDelta: "", ReasoningDelta: ""}
        return [kind(_REPLACEMENT) for kind, half in halves.items() if half]

    def _whole(self, event: ProviderEvent) -> ProviderEvent | None:
        if isinstance(event, Finish):
            return Finish(_encodable(event.reason))
        if not isinstance(event, TextDelta | ReasoningDelta):
            return event
        kind = type(event)
        if not self._half[kind] and _encodes(event.text):
            return event  # text that UTF-8 encodes as it is
        text, self._half[kind] = self._half[kind] + event.text, ""
        if "\ud800" <= text[-1:] <= "\udbff":
            text, self._half[kind] = text[:-1], text[-1]
        text = _encodable(text)
        return kind(text) if text else None


def _plain_text(batch: list[ProviderEvent]) -> bool:
    """Only text deltas of ASCII text: well formed and whole as they are (~0.3 µs a batch, where checking each
    event's fields and characters costs ~1.3 µs: make bench's throughput is ~12 µs a token)."""
    for event in batch:
        if event.__class__ is not TextDelta or event.text.__class__ is not str or not event.text.isascii():
            return False
    return True


def _encodable(text: str) -> str:
    """``text`` with its surrogate pairs joined and any other surrogate replaced by U+FFFD."""
    if _encodes(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so that asyncio does not report it as lost
