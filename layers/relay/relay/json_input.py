"""JSON from outside the relay (request bodies, the context headers), parsed only when its nesting is bounded.

The standard library's decoder recurses once per level of nesting, and raises RecursionError (not ValueError) from
about 1,500 levels: a 64 KiB body of ``[`` is 65,536. So the depth is measured first, without recursion: strings
cut out (an escaped quote stays inside its string), the brackets left counted up and down. The API's deepest body
is 5 levels (an AI SDK body: object, messages, message, parts, part) and ``MAX_DEPTH`` leaves room for what clients
add. Measured here: ~10 µs on a 12 KB chat body, about what parsing it costs, since a text with at most
``MAX_DEPTH`` opening brackets cannot nest deeper and is not scanned at all; at most ~3.5 ms on a crafted 64 KiB
body (parsing a flat one of that size takes ~1.5 ms). Catching RecursionError instead would cost nothing up front
(~0.1 ms to fail), but leaves the limit to how deep the interpreter's stack happens to be, lets a crafted body
cost its full parse below that, and the error can come from anywhere below the call.

Hand-written because no JSON library offers a depth limit at the standard library's speed and import cost (orjson's
is a fixed 1,024 levels, for ~1 ms of import and a dependency). Text must be UTF-8, as RFC 8259 asks of JSON
exchanged between systems: ``json.loads`` would also guess UTF-16 and UTF-32 from bytes, whose quotes the scan would
misread.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "TooDeep", "loads", "nesting_depth"]

MAX_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeep(ValueError):
    """When JSON nests deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The value of UTF-8 JSON text. Raises ``TooDeep`` past ``max_depth`` levels, and ``ValueError`` (its
    ``UnicodeDecodeError`` and ``JSONDecodeError`` included) for anything that is not valid JSON, huge integers
    too (Python's 4,300-digit limit); never RecursionError."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    # No more opening brackets than max_depth cannot nest deeper: the usual body is not scanned at all.
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth:
        raise TooDeep(max_depth)
    return json.loads(text)


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of JSON text nest; for invalid JSON, at least as deep as any valid prefix of
    it nests, which is as far as a parser gets."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)
