"""The provider reader on its own, fed by a stream the test controls: batches in order, each wait bounded, and
checkpoints that fall due while the provider is silent (test_timeouts.py tests the same through the app)."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from relay.errors import DEADLINE, PROVIDER_ERROR, PROVIDER_TIMEOUT, ProviderError
from relay.events import Finish, ProviderEvent, TextDelta, Usage
from relay.reader import ProviderReader, Timeouts

SHORT = Timeouts(first_token=0.2, idle=0.2, checkpoint=0.05)


class Stream:
    """A provider's batches, released by the test; closed is True once the reader has closed it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[ProviderEvent] | Exception | None] = asyncio.Queue()
        self.closed = False

    def __aiter__(self) -> AsyncIterator[list[ProviderEvent]]:
        return self

    async def __anext__(self) -> list[ProviderEvent]:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True


def reader_of(stream: Stream, timeouts: Timeouts = SHORT, *, stop_in: float = 60.0,
              checkpoint: Callable[[], None] = lambda: None) -> ProviderReader:
    async def checkpointed() -> bool:
        checkpoint()
        return True

    return ProviderReader(stream, "openai", timeouts, time.perf_counter() + stop_in, time.perf_counter, checkpointed)


def test_batches_come_in_order_and_the_end_of_the_stream_is_none():
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        for item in ([TextDelta("a")], [TextDelta("b"), TextDelta("c")], None):
            stream.queue.put_nowait(item)
        got = [await reader.next(waiting_for_first=True), await reader.next(waiting_for_first=False),
               await reader.next(waiting_for_first=False)]
        await reader.close()
        return got

    assert asyncio.run(scenario()) == [[TextDelta("a")], [TextDelta("b"), TextDelta("c")], None]


def test_a_providers_error_arrives_after_the_batches_before_it():
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        stream.queue.put_nowait([TextDelta("so far")])
        stream.queue.put_nowait(ProviderError(PROVIDER_ERROR, "boom"))
        first = await reader.next(waiting_for_first=True)
        with pytest.raises(ProviderError) as raised:
            await reader.next(waiting_for_first=False)
        return first, raised.value.code

    assert asyncio.run(scenario()) == ([TextDelta("so far")], PROVIDER_ERROR)


@pytest.mark.parametrize("failure", [
    [TextDelta("so far"), TextDelta(7)],  # type: ignore[arg-type]  # what no provider module should yield
    [TextDelta("so far"), Usage(1, 10**400)],
    ValueError("a parser's own bug"),
])
def test_whatever_a_provider_module_yields_or_raises_the_turn_gets_text_and_provider_error(failure):
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        if isinstance(failure, Exception):
            stream.queue.put_nowait([TextDelta("so far")])
        stream.queue.put_nowait(failure)
        first = await reader.next(waiting_for_first=True)
        with pytest.raises(ProviderError) as raised:
            await reader.next(waiting_for_first=False)
        await reader.close()
        return first, raised.value.code

    assert asyncio.run(scenario()) == ([TextDelta("so far")], PROVIDER_ERROR)


@pytest.mark.parametrize(("sent", "received"), [
    # an emoji whose UTF-16 halves came in two deltas ("\ud83d", "\ude00" in JSON): one character again
    ([["ok \ud83d"], ["\ude00 end"]], ["ok ", "\U0001f600 end"]),
    ([["\ud83d"], ["\ude00"]], ["\U0001f600"]),
    # a half with no other half: the replacement character, as a decoder puts for a byte it cannot read (a high
    # half that ends a delta waits for the next, so at the end of the stream it comes alone)
    ([["a\udc00b"], ["c\ud800"]], ["a\ufffdb", "c", "\ufffd"]),
])
def test_text_reaches_the_turn_in_whole_characters_that_utf_8_can_encode(sent, received):
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        for texts in sent:
            stream.queue.put_nowait([TextDelta(text) for text in texts])
        stream.queue.put_nowait(None)
        texts = []
        while (batch := await reader.next(waiting_for_first=True)) is not None:
            texts += [event.text for event in batch if isinstance(event, TextDelta)]
        await reader.close()
        return texts

    texts = asyncio.run(scenario())
    assert texts == received
    assert all(text.encode() for text in texts)


def test_a_finish_reason_or_an_error_message_reaches_the_turn_as_text_utf_8_can_encode():
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        stream.queue.put_nowait([TextDelta("so far"), Finish("st\udc00op")])
        stream.queue.put_nowait(ProviderError(PROVIDER_ERROR, "the provider said \ud800"))
        first = await reader.next(waiting_for_first=True)
        with pytest.raises(ProviderError) as raised:
            await reader.next(waiting_for_first=False)
        return first, raised.value.message

    assert asyncio.run(scenario()) == ([TextDelta("so far"), Finish("st\ufffdop")], "the provider said \ufffd")


@pytest.mark.parametrize("waiting_for_first", [True, False])
def test_silence_longer_than_its_timeout_is_a_provider_timeout(waiting_for_first):
    timeouts = Timeouts(first_token=0.1 if waiting_for_first else 5, idle=5 if waiting_for_first else 0.1,
                        checkpoint=10)

    async def scenario():
        reader = reader_of(Stream(), timeouts)
        started = time.perf_counter()
        with pytest.raises(ProviderError) as raised:
            await reader.next(waiting_for_first=waiting_for_first)
        await reader.close()
        return raised.value.code, time.perf_counter() - started

    code, waited = asyncio.run(scenario())
    assert code == PROVIDER_TIMEOUT
    assert 0.1 <= waited < 4  # the timeout that applies, not the other one


def test_the_deadline_cuts_any_wait_short():
    async def scenario():
        reader = reader_of(Stream(), Timeouts(first_token=30, idle=30, checkpoint=10), stop_in=0.1)
        with pytest.raises(ProviderError) as raised:
            await reader.next(waiting_for_first=True)
        await reader.close()
        return raised.value.code

    assert asyncio.run(scenario()) == DEADLINE


def test_checkpoints_fall_due_while_the_provider_is_silent_and_a_late_batch_still_arrives():
    async def scenario():
        stream, checkpoints = Stream(), []

        def checkpoint() -> None:
            checkpoints.append(time.perf_counter())
            if len(checkpoints) == 3:  # the provider speaks only after three checkpoints
                stream.queue.put_nowait([TextDelta("late")])

        reader = reader_of(stream, Timeouts(first_token=5, idle=5, checkpoint=0.02), checkpoint=checkpoint)
        return await reader.next(waiting_for_first=True), len(checkpoints)

    assert asyncio.run(scenario()) == ([TextDelta("late")], 3)


def test_closing_closes_the_providers_stream():
    async def scenario():
        stream = Stream()
        reader = reader_of(stream)
        reader.start()
        await asyncio.sleep(0)
        await reader.close()
        return stream.closed

    assert asyncio.run(scenario()) is True
