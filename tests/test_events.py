"""Every file in events/ runs through the app the way the Lambda Web Adapter would deliver it."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools.invoke import adapter_request, event_files, invoke
from tests.helpers import check_event_answer

EVENTS = event_files()


def test_there_is_an_event_for_every_route():
    paths = {json.loads(path.read_text())["rawPath"].split("/")[1] for path in EVENTS}
    assert {"healthz", "sessions", "chat"} <= paths


@pytest.mark.parametrize("path", EVENTS, ids=[path.name for path in EVENTS])
def test_event_file_is_a_function_url_event_that_the_app_answers(stack, path):
    event = json.loads(path.read_text())
    assert event["version"] == "2.0"
    check_event_answer(event, list(invoke(event, stack.url)))


def test_adapter_request_carries_the_lambda_and_request_context_headers():
    event = json.loads((EVENTS[0]).read_text())
    request = adapter_request(event, "http://127.0.0.1:1")
    lambda_context = json.loads(request.headers["x-amzn-lambda-context"])
    assert lambda_context["request_id"] == event["requestContext"]["requestId"]
    assert lambda_context["deadline"] > 0
    assert json.loads(request.headers["x-amzn-request-context"]) == event["requestContext"]


def test_request_id_from_the_adapter_headers_reaches_the_logs(stack, caplog):
    event = json.loads(next(p for p in EVENTS if p.name == "chat-stream.json").read_text())
    list(invoke(event, stack.url))
    ended = [record for record in caplog.records if record.getMessage() == "stream ended"]
    assert ended and ended[-1].request_id == event["requestContext"]["requestId"]



ROOT = Path(__file__).resolve().parent.parent


def make_invoke(*variables: str) -> subprocess.CompletedProcess[str]:
    """`make invoke` as a user runs it from a shell: not as a sub-make of `make test` (MAKELEVEL would make its own
    error line "make[1]: ***")."""
    sub_make = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    environment = {name: value for name, value in os.environ.items() if name not in sub_make}
    return subprocess.run(["make", "--no-print-directory", "invoke", *variables], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)


def test_make_invoke_writes_the_response_to_stdout_and_the_local_stacks_logs_to_stderr():
    done = make_invoke("EVENT=events/chat-stream.json")
    assert done.returncode == 0, done.stderr
    # stdout is the response alone: status, headers, the event stream
    assert done.stdout.startswith("HTTP 200\n") and "event: done" in done.stdout
    assert '"level"' not in done.stdout and '"_aws"' not in done.stdout
    # stderr has the app's JSON logs and EMF
    assert '"message":"stream ended"' in done.stderr and '{"_aws"' in done.stderr


def test_make_invoke_with_no_such_event_file_says_so_in_one_line():
    done = make_invoke("EVENT=events/no-such-event.json")
    assert done.returncode != 0 and done.stdout == ""
    said = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]  # make's own line
    assert said == ["no event file events/no-such-event.json — try `make invoke EVENT=events/chat-stream.json` "
                    "(the others are in events/ too)"]
