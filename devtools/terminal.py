"""What `make dev` shows in the terminal, and what it keeps in its log.

The app writes what it would write on Lambda: Powertools JSON log lines and EMF blobs, several per turn, each a
long line of JSON. A developer watching the terminal wants one line per turn (provider, model, status, time to first
token, tokens/s) and any warning; `make report` wants every EMF blob. So everything goes to the log file, and the
terminal gets the plain lines (the banner), one short line per finished turn, and warnings and errors, unless
``verbose`` asks for all of it there too.

Hand-written: a line filter over a text stream, which is all this is; no logging library turns a Powertools JSON
record back into a human line.

    12:04:31  simulated · sim  complete  first token 244 ms · 39 tokens/s
"""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any, TextIO

from relay.telemetry import logger

__all__ = ["DevOutput", "send_relay_logs_to", "turn_line"]

TURN_ENDED = "stream ended"  # the message of the log line relay/turn.py writes once per turn, with its numbers
SHOWN_LEVELS = {"WARNING", "ERROR", "CRITICAL"}  # a JSON log line of these levels is shown even when not verbose


def turn_line(record: dict[str, Any], clock: str | None = None) -> str | None:
    """One short line for a turn's end log record, None for any other record."""
    if record.get("message") != TURN_ENDED:
        return None
    status = str(record.get("status"))
    if record.get("error_code"):
        status += f" {record['error_code']}"
    ttft, rate = record.get("ttft_ms"), record.get("tokens_per_second")
    facts = [f"first token {ttft:.0f} ms" if isinstance(ttft, int | float) else "no token",
             *([f"{rate:.0f} tokens/s"] if isinstance(rate, int | float) else [])]
    return (f"{clock or time.strftime('%H:%M:%S')}  {record.get('provider')} · {record.get('model')}  {status}  "
            f"{' · '.join(facts)}")


class DevOutput(io.TextIOBase):
    """A text stream (``sys.stdout`` of `make dev`) that keeps every line in ``log`` and shows ``terminal`` the
    lines a person reads: all of them with ``verbose``."""

    def __init__(self, terminal: TextIO, log: TextIO, *, verbose: bool = False) -> None:
        self._terminal = terminal
        self._log = log
        self._verbose = verbose
        self._partial = ""  # print() writes a line and its end apart

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self._log.flush()
        self._terminal.flush()

    def _line(self, line: str) -> None:
        self._log.write(line + "\n")
        self._log.flush()
        shown = self._shown(line)
        if self._verbose and shown != line:
            self._terminal.write(line + "\n")
        if shown is not None:
            self._terminal.write(shown + "\n")
        self._terminal.flush()

    @staticmethod
    def _shown(line: str) -> str | None:
        if not line.startswith("{"):
            return line  # the banner, a print()
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if not isinstance(record, dict) or "_aws" in record:
            return None  # EMF: for `make report`
        summary = turn_line(record)
        if summary is not None:
            return summary
        level = str(record.get("level", ""))
        if level in SHOWN_LEVELS:
            return f"{time.strftime('%H:%M:%S')}  {level.lower()}: {record.get('message')}"
        return None


def send_relay_logs_to(stream: TextIO | io.TextIOBase) -> None:
    """Points the relay's logger at ``stream``: Powertools' handler took ``sys.stdout`` when relay.telemetry was
    imported, so replacing ``sys.stdout`` later does not move it."""
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(stream)
