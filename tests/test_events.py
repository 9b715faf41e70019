"""Every file in events/ runs through the app the way the Lambda Web Adapter would deliver it."""

import json

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

