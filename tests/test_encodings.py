"""The three wire encodings of a turn's events, fed scripted events with no I/O: which one a request gets, what each
writes, and that each closes the turn it reads, whatever happens. (Streamed end to end: test_turn.py, test_ai_sdk.py,
test_resume.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from relay import encodings
from relay.errors import RequestRejected
from relay.events import Done, Failed, Reasoning, Started, Tokens, TurnEvent

DONE = Done("a1", "end_turn", 3, 4, 12.5, 40.0, reasoning_tokens=2, time_to_first_reasoning_ms=5.0)


class Turn:
    """Scripted events, noting whether the encoding closed them."""

    def __init__(self, *events: TurnEvent) -> None:
        self.events = events
        self.closed = False

    async def stream(self) -> AsyncGenerator[TurnEvent, None]:
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True


def encoded(encoding: encodings.Encoding, turn: Turn) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in encoding.encode(turn.stream())])

    return asyncio.run(read())


@pytest.mark.parametrize(("protocol", "accept", "chosen"), [
    (None, "", encodings.SseEvents), (None, "text/event-stream", encodings.SseEvents),
    (None, "text/plain", encodings.PlainText), (None, "text/plain, text/event-stream", encodings.SseEvents),
    ("ai-sdk", "text/plain", encodings.UiMessageStream),
])
def test_the_request_chooses_the_encoding(protocol, accept, chosen):
    assert type(encodings.for_request(protocol, accept)) is chosen


@pytest.mark.parametrize("protocol", ["AI-SDK", "", "sse"])
def test_an_unknown_protocol_is_a_422(protocol):
    with pytest.raises(RequestRejected) as refused:
        encodings.for_request(protocol, "")
    assert refused.value.status == 422 and "protocol" in refused.value.message


def test_sse_event_ids_count_characters_from_where_a_resume_starts():
    turn = Turn(Reasoning(["ab"]), Tokens(["héllo", "🙂"]), Reasoning(["c"]), DONE)
    body = encoded(encodings.SseEvents(offset=10, reasoning_offset=3), turn).decode()
    ids = [line.removeprefix("id: ") for line in body.splitlines() if line.startswith("id: ")]
    assert ids == ["10:5", "15:5", "16:5", "16:6"]  # a token's id names the reasoning's offset once there is some
    assert body.endswith('event: done\ndata: {"messageId":"a1","finishReason":"end_turn","usage":{"inputTokens":3,'
                         '"outputTokens":4,"reasoningTokens":2},"ttftMs":12.5,"tokensPerSecond":40.0,'
                         '"timeToFirstReasoningMs":5.0}\n\n')
    assert turn.closed


def test_a_tokens_id_is_the_text_offset_alone_while_there_is_no_reasoning():
    body = encoded(encodings.SseEvents(), Turn(Tokens(["ab", "c"]), Reasoning(["r"]), Tokens(["d"]), DONE)).decode()
    assert [line.removeprefix("id: ") for line in body.splitlines() if line.startswith("id: ")] == [
        "2", "3", "3:1", "4:1"]


def test_plain_text_is_the_answer_alone_with_a_failure_on_a_last_line():
    turn = Turn(Started("u1", "a1"), Reasoning(["thinking"]), Tokens(["Hel", "lo"]), Failed("deadline", "late"))
    assert encoded(encodings.PlainText(), turn) == b"Hello\n\n[error deadline: late]\n"
    assert turn.closed


def test_the_ui_message_stream_closes_the_reasoning_part_when_the_text_begins():
    turn = Turn(Started("u1", "a1"), Reasoning(["a", "b"]), Tokens(["x"]), Reasoning(["c"]), DONE)
    chunks = encoded(encodings.UiMessageStream(), turn).decode().split("\n\n")
    assert chunks[-2:] == ["data: [DONE]", ""]
    parts = [json.loads(chunk.removeprefix("data: ")) for chunk in chunks[:-2]]
    assert [(part["type"], part.get("id")) for part in parts] == [
        ("start", None), ("reasoning-start", "a1-reasoning-1"), ("reasoning-delta", "a1-reasoning-1"),
        ("reasoning-delta", "a1-reasoning-1"), ("reasoning-end", "a1-reasoning-1"), ("text-start", "a1"),
        ("text-delta", "a1"), ("reasoning-start", "a1-reasoning-2"), ("reasoning-delta", "a1-reasoning-2"),
        ("reasoning-end", "a1-reasoning-2"), ("text-end", "a1"), ("finish", None)]
    assert parts[-1]["finishReason"] == "stop" and parts[-1]["messageMetadata"]["usage"]["reasoningTokens"] == 2


def test_a_failure_ends_the_open_ui_parts_then_says_its_code():
    turn = Turn(Started("u1", "a1"), Tokens(["x"]), Failed("provider_timeout", "slow"))
    parts = [json.loads(chunk.removeprefix("data: "))
             for chunk in encoded(encodings.UiMessageStream(), turn).decode().split("\n\n")[:-2]]
    assert parts[-2:] == [{"type": "text-end", "id": "a1"},
                          {"type": "error", "errorText": "provider_timeout: slow"}]


@pytest.mark.parametrize("encoding", [encodings.SseEvents(), encodings.PlainText(), encodings.UiMessageStream()])
def test_each_encoding_closes_the_turn_when_its_reader_stops_early(encoding):
    turn = Turn(Started("u1", "a1"), Tokens(["a"]), Tokens(["b"]), DONE)

    async def read_one() -> None:
        stream = encoding.encode(turn.stream())
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(read_one())
    assert turn.closed
