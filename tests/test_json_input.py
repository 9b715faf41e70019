"""JSON from outside, one trap per test: nesting is measured without recursion, strings do not count, and every
failure is a ValueError, never a RecursionError."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.json_input import MAX_DEPTH, TooDeep, loads, nesting_depth


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


def test_nesting_just_at_the_limit_parses_and_one_level_more_is_too_deep():
    assert depth_of(loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)) == MAX_DEPTH
    with pytest.raises(TooDeep):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_nesting_far_past_the_recursion_limit_is_too_deep_not_a_recursion_error():
    with pytest.raises(TooDeep):
        loads(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    with pytest.raises(TooDeep):
        loads("[" * 50_000)  # unclosed: a parser recurses all the same before it finds out


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"content": "[[[{{{" * 100, "quote": '\\"[[[' * 100})
    assert nesting_depth(text) == 1
    assert loads(text)["content"].startswith("[[[")


def test_an_escaped_quote_does_not_end_its_string():
    assert nesting_depth(r'["\"[[[[", ["x"]]') == 2
    assert nesting_depth(r'["\\", [["x"]]]') == 3  # an escaped backslash does not escape the quote after it


def test_too_deep_is_a_value_error_so_one_except_catches_every_bad_body():
    assert issubclass(TooDeep, ValueError)


@pytest.mark.parametrize("raw", [
    b"\xff\xfe{}",  # not UTF-8
    json.dumps({"a": 1}).encode("utf-16"),  # JSON's bytes must be UTF-8 (RFC 8259)
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    b"1" * 5000,  # an integer over Python's 4,300-digit limit
    b'{"a": ',
])
def test_what_is_not_utf8_json_is_a_value_error(raw):
    with pytest.raises(ValueError):
        loads(raw)


def test_huge_floats_and_lone_surrogates_parse_as_the_standard_library_does():
    assert loads(b"1e999999") == float("inf")
    assert loads(rb'"\ud800"') == "\ud800"


JSONISH = st.text(alphabet='[]{}"\\,:1a ', max_size=2000)
DEEP_OPENINGS = st.builds(lambda levels, opening: opening * levels, st.integers(0, 3000),
                          st.sampled_from(["[", '{"a":']))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(head=DEEP_OPENINGS, tail=JSONISH)
def test_any_text_of_brackets_quotes_and_escapes_parses_or_is_a_value_error(head, tail):
    try:
        value = loads(head + tail)
    except ValueError:
        return
    assert depth_of(value) == nesting_depth(head + tail) <= MAX_DEPTH
