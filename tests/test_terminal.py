"""devtools.terminal: what `make dev`'s terminal shows of the app's output, and that its log keeps all of it. (The
real command's output is tested in test_local_run.py.)"""

import io
import json

from devtools.terminal import DevOutput, turn_line

ENDED = {"level": "INFO", "message": "stream ended", "provider": "openai", "model": "gpt-4o-mini",
         "status": "complete", "ttft_ms": 241.9, "tokens_per_second": 40.4, "duration_ms": 1200.0}


def written(*pieces: str, verbose: bool = False) -> tuple[str, str]:
    terminal, log = io.StringIO(), io.StringIO()
    output = DevOutput(terminal, log, verbose=verbose)
    for piece in pieces:
        output.write(piece)
    return terminal.getvalue(), log.getvalue()


def test_a_turns_end_is_one_line_with_its_provider_model_status_ttft_and_rate():
    line = turn_line(ENDED, clock="12:00:00")
    assert line == "12:00:00  openai · gpt-4o-mini  complete  first token 242 ms · 40 tokens/s"


def test_a_turn_that_failed_before_its_first_token_says_its_code_and_no_token():
    failed = {**ENDED, "status": "error", "error_code": "provider_auth", "ttft_ms": None, "tokens_per_second": None}
    assert turn_line(failed, clock="12:00:00") == "12:00:00  openai · gpt-4o-mini  error provider_auth  no token"


def test_other_log_lines_are_no_turn():
    assert turn_line({"level": "INFO", "message": "stream started"}) is None


def test_the_terminal_gets_plain_lines_turns_and_warnings_and_the_log_gets_every_line_whole():
    emf = json.dumps({"_aws": {"CloudWatchMetrics": []}, "Requests": [1.0]})
    started = json.dumps({"level": "INFO", "message": "stream started"})
    warning = json.dumps({"level": "WARNING", "message": "title model failed"})
    # print() writes a line and its end apart: a line is whole only at its end
    terminal, log = written("banner\n", emf, "\n", started + "\n" + json.dumps(ENDED) + "\n" + warning + "\n")

    shown = terminal.splitlines()
    assert shown[0] == "banner" and len(shown) == 3
    assert shown[1].endswith("openai · gpt-4o-mini  complete  first token 242 ms · 40 tokens/s")
    assert shown[2].endswith("warning: title model failed")
    assert log.splitlines() == ["banner", emf, started, json.dumps(ENDED), warning]


def test_verbose_shows_every_line_and_each_turns_line_after_its_record():
    emf = json.dumps({"_aws": {"CloudWatchMetrics": []}})
    terminal, _ = written(emf + "\n" + json.dumps(ENDED) + "\n", verbose=True)
    shown = terminal.splitlines()
    assert shown[:2] == [emf, json.dumps(ENDED)] and "complete  first token 242 ms" in shown[2]
