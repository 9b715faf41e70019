"""The invocation as the adapter's headers describe it: on Lambda the adapter writes them, but a direct caller of the
app can send anything, and whatever it sends is read as "not said", never a 500."""

import json
import time

import pytest

from relay.context import LAMBDA_CONTEXT_HEADER, REQUEST_CONTEXT_HEADER, Invocation
from tests.helpers import messages_of, new_session, stream_chat

HOSTILE_LAMBDA_CONTEXTS = {
    "nested 5000 deep": "[" * 5000 + "]" * 5000,
    "an object nested 5000 deep": '{"deadline":' * 5000 + "1" + "}" * 5000,
    "deadline infinite": '{"deadline": 1e999}',
    "deadline not a number": '{"deadline": NaN}',
    "deadline of 400 digits": '{"deadline": 1' + "0" * 400 + "}",
    "deadline of 5000 digits": '{"deadline": 1' + "0" * 5000 + "}",
    "deadline true": '{"deadline": true}',
    "deadline a string": '{"deadline": "soon"}',
    "deadline a year away": json.dumps({"deadline": int(time.time() * 1000) + 365 * 86_400_000}),
    "ids of other types": '{"request_id": [1], "xray_trace_id": {"Root": 1}}',
    "ids with control characters": json.dumps({"request_id": "a\nb", "xray_trace_id": "Root=1\x00"}),
    "not JSON": "{not json",
    "an array": "[]",
}


@pytest.mark.parametrize("case", list(HOSTILE_LAMBDA_CONTEXTS))
def test_a_lambda_context_no_lambda_would_send_says_nothing(case):
    invocation = Invocation.from_headers({LAMBDA_CONTEXT_HEADER: HOSTILE_LAMBDA_CONTEXTS[case]})
    assert invocation.deadline_ms is None
    assert invocation.trace_id is None
    assert invocation.request_id.startswith("local-")


def test_what_the_adapter_sends_is_read():
    deadline = int(time.time() * 1000) + 300_000
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    headers = {LAMBDA_CONTEXT_HEADER: json.dumps({"request_id": "r-1", "deadline": deadline, "xray_trace_id": trace}),
               REQUEST_CONTEXT_HEADER: json.dumps({"requestId": "ignored: the Lambda context's id comes first"})}
    invocation = Invocation.from_headers(headers)
    assert (invocation.request_id, invocation.deadline_ms, invocation.trace_id) == ("r-1", deadline, trace)
    assert Invocation.from_headers({REQUEST_CONTEXT_HEADER: '{"requestId": "u-2"}'}).request_id == "u-2"


@pytest.mark.parametrize("case", ["nested 5000 deep", "deadline infinite", "deadline of 400 digits",
                                  "ids with control characters"])
def test_a_turn_with_a_hostile_lambda_context_streams_and_stores_its_answer(client, case):
    # GIVEN a direct caller that sends its own Lambda context
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    # WHEN it streams a turn
    received = stream_chat(client, chat_session_id, headers={LAMBDA_CONTEXT_HEADER: HOSTILE_LAMBDA_CONTEXTS[case]})
    # THEN the turn runs under the local deadline and both messages are stored
    assert received.one("done")
    assert [message["status"] for message in messages_of(client, chat_session_id)] == ["complete", "complete"]
