"""The SSE decoder, one trap of real provider streams per test (after openai-python's tests/test_streaming.py)."""

import json

import pytest

from relay.errors import PROVIDER_ERROR, ProviderError
from relay.sse import MAX_LINE_BYTES, MAX_UNFRAMED_BYTES, ServerSentEvent, SSEDecoder, format_event, reasoning_event


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.finish()


def test_basic_event_with_type_and_data():
    assert decode(b"event: token\ndata: {\"a\": 1}\n\n") == [ServerSentEvent("token", '{"a": 1}')]


def test_crlf_line_endings():
    assert decode(b"event: ping\r\ndata: x\r\n\r\n") == [ServerSentEvent("ping", "x")]


def test_lone_cr_line_endings():
    assert decode(b"event: ping\rdata: x\r\r") == [ServerSentEvent("ping", "x")]


def test_cr_at_the_end_of_one_read_and_lf_at_the_start_of_the_next_are_one_break():
    events = decode(b"data: one\r", b"\ndata: two\r", b"\n\r", b"\n")
    assert events == [ServerSentEvent("message", "one\ntwo")]


def test_multi_byte_character_split_across_reads():
    encoded = "data: caf\u00e9 \U0001f642\n\n".encode()
    split_in_emoji = encoded.index("\U0001f642".encode()) + 2
    assert decode(encoded[:9], encoded[9:split_in_emoji], encoded[split_in_emoji:]) == [
        ServerSentEvent("message", "caf\u00e9 \U0001f642")]


def test_unicode_line_separators_inside_the_text_do_not_split_lines():
    text = "a\u2028b\u2029c\u0085d\x1ce\x0bf\x0cg"
    data = json.dumps({"text": text}, ensure_ascii=False)
    [event] = decode(f"data: {data}\n\n".encode())
    assert json.loads(event.data) == {"text": text}


def test_comment_and_keep_alive_lines_are_ignored():
    assert decode(b": OPENROUTER PROCESSING\n\n:\ndata: x\n\n") == [ServerSentEvent("message", "x")]


def test_data_without_a_space_after_the_colon():
    assert decode(b"data:x\n\ndata:  two spaces\n\n") == [ServerSentEvent("message", "x"),
                                                           ServerSentEvent("message", " two spaces")]


def test_multi_line_data_joins_with_newlines():
    assert decode(b"data: {\ndata: \"a\": 1\ndata: }\n\n") == [ServerSentEvent("message", '{\n"a": 1\n}')]


def test_eof_without_a_final_blank_line_still_dispatches():
    assert decode(b"data: [DONE]") == [ServerSentEvent("message", "[DONE]")]
    assert decode(b"event: done\ndata: x\n") == [ServerSentEvent("done", "x")]


def test_event_split_across_many_single_byte_reads():
    raw = b"event: token\r\ndata: {\"t\": \"\xc3\xa9\"}\r\n\r\n"
    assert decode(*[raw[i:i + 1] for i in range(len(raw))]) == [ServerSentEvent("token", '{"t": "\u00e9"}')]


def test_every_way_of_splitting_a_stream_in_three_reads_gives_the_same_events():
    raw = "event: a\r\ndata: 1\r\rdata: \u00e9\n\n: c\r\ndata: \U0001f642\n\rdata: x\r\n\r\n".encode()
    whole = decode(raw)
    assert [event.data for event in whole] == ["1", "\u00e9", "\U0001f642", "x"]
    for first in range(len(raw) + 1):
        for second in range(first, len(raw) + 1):
            assert decode(raw[:first], raw[first:second], raw[second:]) == whole, (first, second)


def test_a_line_longer_than_a_thousand_reads_arrives_whole():
    text = "\u00e9" * 500_000  # a million bytes, with characters split between reads
    raw = f"data: {text}\r\n\r\n".encode()
    assert decode(*[raw[i:i + 1000] for i in range(0, len(raw), 1000)]) == [ServerSentEvent("message", text)]


def test_id_is_kept_and_retry_is_not_data():
    assert decode(b"id: 7\nretry: 100\ndata: x\n\n") == [ServerSentEvent("message", "x", "7")]


def test_lines_that_are_no_sse_field_are_kept_aside():
    decoder = SSEDecoder()
    decoder.feed(b'{\n  "error": {"code": 503}\n}\n')
    assert decoder.finish() == []
    assert "".join(decoder.unframed) == '{  "error": {"code": 503}}'


def test_written_events_keep_any_content_inside_one_data_line():
    text = "line\n\nevent: fake\ndata: fake\r\n\u2028"
    raw = format_event("token", {"text": text}, event_id="12")
    [event] = decode(raw)
    assert (event.event, event.id, json.loads(event.data)) == ("token", "12", {"text": text})


# Limits: what one stream can make the relay hold is bounded, and passing a limit is provider_error.

def reads_of(raw: bytes, size: int) -> list[bytes]:
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def test_a_line_just_at_the_cap_split_over_reads_arrives_whole():
    line = b"data: " + b"x" * 94  # 100 bytes
    decoder = SSEDecoder(max_line_bytes=100)
    events = [event for chunk in reads_of(line + b"\r\n\r\n", 7) for event in decoder.feed(chunk)]
    assert events == [ServerSentEvent("message", "x" * 94)]


def test_a_line_one_byte_over_the_cap_fails_before_its_end_arrives():
    decoder = SSEDecoder("openai", max_line_bytes=100)
    reads = reads_of(b"data: " + b"x" * 95, 7)
    for chunk in reads[:-1]:
        assert decoder.feed(chunk) == []
    with pytest.raises(ProviderError) as raised:
        decoder.feed(reads[-1])  # the 101st byte: no line end has come, and none is waited for
    assert raised.value.code == PROVIDER_ERROR
    assert "openai" in raised.value.message and "100 bytes" in raised.value.message


def test_a_line_over_the_cap_that_ends_in_the_same_read_fails():
    with pytest.raises(ProviderError):
        SSEDecoder(max_line_bytes=100).feed(b"data: " + b"x" * 95 + b"\n\n")


def test_the_events_before_an_overlong_line_in_the_same_read_come_first_then_the_error():
    decoder = SSEDecoder(max_line_bytes=100)
    assert decoder.feed(b"data: one\n\ndata: two\n\ndata: " + b"x" * 200) == [ServerSentEvent("message", "one"),
                                                                            ServerSentEvent("message", "two")]
    with pytest.raises(ProviderError):
        decoder.feed(b"\n\n")
    with pytest.raises(ProviderError):
        decoder.finish()


def test_an_event_of_many_short_data_lines_over_the_cap_fails():
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=1000)
    line = b"data: " + b"x" * 44 + b"\n"  # 50 bytes without its line break: 20 of them make the cap exactly
    assert decoder.feed(line * 20) == []
    with pytest.raises(ProviderError) as raised:
        decoder.feed(line)
    assert "event" in raised.value.message and "1,000 bytes" in raised.value.message


def test_an_event_just_at_the_cap_arrives_and_the_next_event_starts_from_zero():
    decoder = SSEDecoder(max_line_bytes=100, max_event_bytes=1000)
    event = (b"data: " + b"x" * 44 + b"\n") * 20 + b"\n"
    for _ in range(3):
        [received] = decoder.feed(event)
        assert len(received.data) == 20 * 44 + 19


def test_the_default_caps_take_the_largest_legitimate_event_and_refuse_a_larger_one():
    # A Responses API response.completed repeats the whole answer: ~3 MB for 128,000 tokens of escaped text.
    completed = b'event: response.completed\ndata: {"text": "' + b"\\u00e9" * 500_000 + b'"}\n\n'
    assert [event.event for event in decode(*reads_of(completed, 65_536))] == ["response.completed"]
    endless = reads_of(b"data: " + b"x" * MAX_LINE_BYTES, 65_536)
    decoder = SSEDecoder()
    with pytest.raises(ProviderError):
        for chunk in endless:
            decoder.feed(chunk)
    assert chunk is endless[-1]  # it held no more than the cap before failing


def test_lines_that_are_no_field_are_kept_only_up_to_their_limit():
    decoder = SSEDecoder()
    decoder.feed(b"not a field\n" * 20_000)
    assert sum(len(line) for line in decoder.unframed) <= MAX_UNFRAMED_BYTES
    assert decoder.unframed[0] == "not a field"


def test_written_reasoning_events_carry_both_offsets_and_keep_any_content_inside_one_data_line():
    text = "think\n\nevent: token\nid: 99\r\n\u2028"
    [event] = decode(reasoning_event(text, 12, 40))
    assert (event.event, event.id, json.loads(event.data)) == ("reasoning", "12:40", {"text": text})
