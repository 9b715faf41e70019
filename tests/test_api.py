"""relay/api.py, the one definition of the API's bodies, and what is made of it: the OpenAPI document the app serves
and the request validators' schemas, both committed (relay/openapi.py), both kept equal here to what api.py makes
now; and the events the streams send, checked against the schemas the document gives them."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import jsonschema
import pytest
from starlette.routing import Route

from relay import api, bodies, openapi
from relay.app import OPENAPI_DOCUMENT, create_app
from relay.config import Settings
from relay.errors import REQUEST_ERROR_CODES, STREAM_ERROR_CODES
from relay.store import ChatStore
from tests.helpers import new_session

REGENERATE = "make openapi (python -m relay.openapi) writes it again"


def test_the_committed_document_is_what_relay_openapi_makes_of_api_py_now():
    assert json.loads(OPENAPI_DOCUMENT.read_text()) == openapi.document(), REGENERATE


def test_the_committed_validator_schemas_are_what_pydantic_makes_of_api_py_now():
    assert json.loads(bodies.SCHEMAS.read_text()) == api.core_schemas(), REGENERATE


def test_the_app_serves_the_committed_document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.content == OPENAPI_DOCUMENT.read_bytes()


def test_every_route_of_the_app_is_an_operation_of_the_document_and_no_other():
    app = create_app(Settings(), ChatStore("unused", ttl_days=1))
    served = {(method.lower(), route.path) for route in app.routes if isinstance(route, Route)
              for method in route.methods or () if method != "HEAD"}
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    assert {(method, path) for path, item in document["paths"].items() for method in item} == served


def test_the_document_is_valid_openapi_3_1():
    from schemathesis.specs.openapi.definitions import OPENAPI_31  # the schema schemathesis checks documents with

    jsonschema.Draft202012Validator(OPENAPI_31).validate(json.loads(OPENAPI_DOCUMENT.read_text()))


def test_the_document_names_every_error_code_and_only_those():
    schemas = json.loads(OPENAPI_DOCUMENT.read_text())["components"]["schemas"]
    assert schemas["ErrorDetail"]["properties"]["code"]["enum"] == list(REQUEST_ERROR_CODES)
    assert schemas["ErrorEvent"]["properties"]["code"]["enum"] == list(STREAM_ERROR_CODES)


def test_the_not_blank_pattern_is_what_str_strip_calls_whitespace():
    # GIVEN every code point but the surrogates, one character each
    validator = bodies._VALIDATORS["ChatRequest"]  # pydantic-core's Rust regex engine, as requests meet it
    characters = [chr(point) for point in range(sys.maxunicode + 1) if not 0xD800 <= point <= 0xDFFF]
    # WHEN each is the content of a chat request THEN it is refused exactly when str.strip() leaves nothing
    refused = []
    for character in characters:
        try:
            validator.validate_python({"chatSessionId": "x", "content": character})
        except Exception:
            refused.append(character)
    assert refused == [character for character in characters if not character.strip()]
    assert [c for c in characters if not re.search(api.NOT_BLANK, c)] == refused  # and as a JSON Schema reader


def test_every_other_pattern_of_a_request_body_has_its_own_words():
    # bodies.py words a pattern mismatch as "must not be empty": true only of NOT_BLANK. Any other pattern must be
    # explained (api.Explained), which its errors then say instead.
    def patterns(schema: Any, explained: bool = False) -> list[tuple[str, bool]]:
        if isinstance(schema, dict):
            explained = explained or schema.get("type") == "custom-error"
            found = [(schema["pattern"], explained)] if "pattern" in schema else []
            return found + [item for value in schema.values() for item in patterns(value, explained)]
        if isinstance(schema, list):
            return [item for value in schema for item in patterns(value, explained)]
        return []

    found = patterns(api.core_schemas())
    assert found and all(pattern == api.NOT_BLANK or explained for pattern, explained in found)


# The streams' events, against the schemas the document gives them.


def validator_of(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def frames(text: str) -> list[dict[str, str]]:
    events = []
    for frame in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append(fields)
    return events


@pytest.mark.parametrize("model", ["sim:first_token_ms=0,tokens_per_second=0,tokens=3",
                                   "sim:first_token_ms=0,tokens_per_second=0,tokens=3,reasoning=2",
                                   "sim:first_token_ms=0,tokens_per_second=0,fault=error_after,fault_at=2"])
def test_every_event_of_a_stream_is_as_the_document_describes_it(client, model):
    chat_session_id = new_session(client, model)
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"})
    described = json.loads(OPENAPI_DOCUMENT.read_text())["paths"]["/chat/stream"]["post"]["responses"]["200"]
    schemas = described["content"]["text/event-stream"]["x-sse-events"]
    events = frames(response.text)
    assert events[0]["event"] == "start" and events[-1]["event"] in ("done", "error")
    for event in events:
        name = schemas[event["event"]]["$ref"].rpartition("/")[2]
        validator_of(name).validate(json.loads(event["data"]))


@pytest.mark.parametrize("model", ["sim:first_token_ms=0,tokens_per_second=0,tokens=3,reasoning=2",
                                   "sim:first_token_ms=0,tokens_per_second=0,fault=error_after,fault_at=2"])
def test_every_part_of_an_ai_sdk_stream_is_as_the_document_describes_it(client, model):
    chat_session_id = new_session(client, model)
    body = {"id": chat_session_id, "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text",
                                                                                       "text": "hi"}]}]}
    response = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=body)
    chunks = [event["data"] for event in frames(response.text)]
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:
        validator_of("UiMessageChunk").validate(json.loads(chunk))


def assert_documented(method: str, path: str, response: Any) -> None:
    """The answer's status is one the document gives the operation, with its content type and, for JSON, a body of
    its schema."""
    document = json.loads(OPENAPI_DOCUMENT.read_text())
    responses = document["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, f"{method} {path} answered {response.status_code}"
    content = responses[str(response.status_code)].get("content")
    if content is None:
        assert response.content == b""
        return
    media_type = response.headers["content-type"].partition(";")[0]
    assert media_type in content
    if media_type == "application/json":
        schema = {**content[media_type]["schema"], "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(response.json())


def test_every_answer_of_a_conversation_taken_through_every_operation_is_as_documented(client):
    # GIVEN a conversation, taken through every operation, one answer of it stopped while it streams
    slow = "sim:first_token_ms=0,tokens_per_second=20,tokens=100,reasoning=2"
    answers = [("get", "/healthz", client.get("/healthz")), ("get", "/openapi.json", client.get("/openapi.json")),
               ("get", "/providers", client.get("/providers")), ("get", "/usage", client.get("/usage"))]
    created = client.post("/sessions", json={"provider": "simulated", "model": slow, "title": "Documented",
                                             "reasoning": {"effort": "low"}})
    chat_session_id = created.json()["chatSessionId"]
    session, answer = f"/sessions/{chat_session_id}", "/sessions/{chatSessionId}/messages/{messageId}"
    answers += [("post", "/sessions", created), ("get", "/sessions", client.get("/sessions", params={"limit": 2})),
                ("patch", "/sessions/{chatSessionId}", client.patch(session, json={
                    "system": "Be brief.", "fallbacks": [{"provider": "simulated", "model": "sim"}]}))]
    with client.stream("POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as stream:
        lines = stream.iter_lines()
        start = next(json.loads(line[6:]) for line in lines if line.startswith("data: "))
        cancelled = client.post(f"{session}/messages/{start['messageId']}/cancel")
        ending = [line for line in lines if line.startswith("event: ")][-1]
    answers += [("post", "/chat/stream", stream), ("post", answer + "/cancel", cancelled),
                ("post", answer + "/cancel", client.post(f"{session}/messages/{start['messageId']}/cancel"))]
    messages = client.get(f"{session}/messages")
    answers += [("get", "/sessions/{chatSessionId}/messages", messages),
                ("get", answer + "/stream", client.get(f"{session}/messages/{start['messageId']}/stream")),
                ("get", answer + "/stream", client.get(f"{session}/messages/{start['messageId']}/stream",
                                                       params={"offset": 99_999})),
                ("delete", "/sessions/{chatSessionId}", client.delete(session)),
                ("delete", "/sessions/{chatSessionId}", client.delete(session))]
    assert ending == "event: error"  # cancelled
    # WHEN each answer is read against the document THEN each is one it gives its operation
    assert [response.status_code for *_, response in answers] == [200, 200, 200, 200, 201, 200, 200, 200, 202,
                                                                   409, 200, 200, 422, 204, 404]
    for method, path, response in answers:
        assert_documented(method, path, response)
