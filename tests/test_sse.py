"""The SSE decoder, one trap of real provider streams per test (after openai-python's tests/test_streaming.py)."""

import json

from relay.sse import ServerSentEvent, SSEDecoder, format_event, reasoning_event


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


def test_written_reasoning_events_carry_both_offsets_and_keep_any_content_inside_one_data_line():
    text = "think\n\nevent: token\nid: 99\r\n\u2028"
    [event] = decode(reasoning_event(text, 12, 40))
    assert (event.event, event.id, json.loads(event.data)) == ("reasoning", "12:40", {"text": text})
