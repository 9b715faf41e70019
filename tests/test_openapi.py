"""The app against its own OpenAPI document, with schemathesis: every operation, with requests it generates from the
document (as it describes them, and not), sent over loopback to an app of its own in AUTH_MODE none, as a user of
its own (an accepted DELETE /sessions must not erase the shared stack's local user's sessions, which other tests
use). Never a 5xx, and every answer's status, content type, headers and body as the document says.

The document's links (a session's id from POST /sessions, an answer's from the stream's ``start``...) are followed
too, in sequences of calls, so the operations on a session are reached with one that exists. Derandomized, so CI
sends the same requests every time; ``OPENAPI_EXAMPLES`` asks for more (or fewer) per operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.local_run import TABLE_NAME
from devtools.servers import UvicornThread
from relay.app import OPENAPI_DOCUMENT, create_app
from relay.config import Settings
from relay.store import ChatStore
from tests.helpers import OneUserOfItsOwn, new_session

EXAMPLES = settings(max_examples=int(os.environ.get("OPENAPI_EXAMPLES", "30")), deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
FAST_MODEL = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"


# The document the app serves (tests/test_api.py keeps the two equal), read at collection: one test per operation.
schema = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)


@pytest.fixture(scope="module")
def relay_url(stack: Any) -> Iterator[str]:
    dynamodb = stack.dynamodb_client()
    app = create_app(replace(Settings.from_environment(), provider_max_retries=0),
                     ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb),
                     authenticator=lambda http: OneUserOfItsOwn("openapi-user"))
    server = UvicornThread(app).start()
    try:
        yield server.url
    finally:
        server.stop()


@schema.parametrize()
@EXAMPLES
def test_every_operation_answers_as_its_document_says(case: Any, relay_url: str) -> None:
    # GIVEN a request the document describes (or, in negative mode, one it rules out)
    # WHEN it is sent THEN no answer is a 5xx, and each is documented: status, content type, headers and body
    case.call_and_validate(base_url=relay_url, checks=CHECKS)


STATEFUL = settings(EXAMPLES, max_examples=int(os.environ.get("OPENAPI_SEQUENCES", "15")), stateful_step_count=8)


def test_calls_that_follow_the_documents_links_answer_as_it_says(relay_url: str) -> None:
    # GIVEN sequences of calls, each taking ids from an answer before it as the document's links say (a session
    # from POST /sessions, its answer from its messages)
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": relay_url}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    # WHEN they run THEN every answer is as documented, and none is a 5xx
    Workflow.run(settings=STATEFUL)


@pytest.mark.parametrize("query", [{}, {"protocol": "ai-sdk"}])
def test_a_whole_answers_stream_conforms_event_by_event(relay_url: str, query: dict[str, str]) -> None:
    # GIVEN a session, and a chat request as each of the stream's protocols sends it
    with httpx.Client(base_url=relay_url) as client:
        chat_session_id = new_session(client, FAST_MODEL)
    body: dict[str, Any] = {"chatSessionId": chat_session_id, "content": "hi"}
    if query:
        body = {"id": chat_session_id, "messages": [{"id": "m1", "role": "user",
                                                     "parts": [{"type": "text", "text": "hi"}]}]}
    case = schema["/chat/stream"]["POST"].Case(body=body, query=query)
    # WHEN it is answered THEN every event of the 200 stream is one the document's per-event schema describes
    response = case.call(base_url=relay_url)
    assert response.status_code == 200 and "event-stream" in response.headers["content-type"][0]
    case.validate_response(response, checks=CHECKS)
