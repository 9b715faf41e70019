"""The HTTP layer over real loopback HTTP: every rejection is a clear 4xx JSON error and writes nothing."""

import json

import pytest

from devtools.local_run import DEMO_SESSION_ID
from relay import config
from relay.json_input import MAX_DEPTH
from tests.helpers import app_client, count_items, new_session


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_healthz_answers_200(client):
    assert client.get("/healthz").status_code == 200


def test_create_session_returns_201_with_an_id_and_lists_no_messages(client):
    chat_session_id = new_session(client, title="A title", system="Be brief.")
    response = client.get(f"/sessions/{chat_session_id}/messages")
    assert response.status_code == 200
    assert response.json() == {"messages": []}


CHAT = {"chatSessionId": DEMO_SESSION_ID, "content": "hello"}


def nested(levels: int) -> list[object]:
    """An array nested this many levels deep: [] is one."""
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code"),
    [
        ("/sessions", b'{"provider": "simulated",', {}, 400, "invalid_json"),
        ("/chat/stream", b"\xff\xfe not utf-8", {}, 400, "invalid_json"),
        ("/sessions", b"[]", {}, 422, "validation_error"),
        ("/sessions", b'{"provider": "simulated"}', {}, 422, "validation_error"),
        ("/sessions", b'{"provider": "nope", "model": "m"}', {}, 422, "validation_error"),
        ("/sessions", b'{"provider": "simulated", "model": 7}', {}, 422, "validation_error"),
        ("/sessions", b'{"provider": "simulated", "model": "   "}', {}, 422, "validation_error"),
        ("/sessions", json.dumps({"provider": "simulated", "model": "m", "title": "t" * 201}).encode(), {}, 422,
         "validation_error"),
        ("/chat/stream", b'{"chatSessionId": "01HZY00000000000000000DEM0", "content": "\\ud800"}', {}, 422,
         "validation_error"),
        ("/chat/stream", json.dumps({"chatSessionId": DEMO_SESSION_ID}).encode(), {}, 422, "validation_error"),
        ("/chat/stream", json.dumps({"chatSessionId": DEMO_SESSION_ID, "content": "x" * 16_001}).encode(), {}, 422,
         "validation_error"),
        ("/chat/stream", json.dumps({"chatSessionId": "01HZY0000000000000000NOPE0", "content": "hi"}).encode(), {},
         404, "session_not_found"),
        ("/chat/stream", json.dumps({"chatSessionId": "../../etc", "content": "hi"}).encode(), {}, 404,
         "session_not_found"),
        ("/chat/stream", json.dumps({**CHAT, "chatSessionId": DEMO_SESSION_ID + "\n"}).encode(), {}, 404,
         "session_not_found"),
        ("/chat/stream", json.dumps({**CHAT, "clientMessageId": "retry-1\n"}).encode(), {}, 422, "validation_error"),
        ("/chat/stream", json.dumps(CHAT).encode(), {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ("/sessions", b"provider=simulated", {"content-type": "application/x-www-form-urlencoded"}, 415,
         "unsupported_media_type"),
        ("/chat/stream", json.dumps({**CHAT, "content": "x" * (config.MAX_BODY_BYTES + 1)}).encode(), {}, 413,
         "payload_too_large"),
        # Nesting deep enough to make a recursive parser raise RecursionError, on every JSON route.
        ("/sessions", b"[" * 5000 + b"]" * 5000, {}, 400, "json_too_deep"),
        ("/chat/stream", b'{"a":' * 5000 + b"1" + b"}" * 5000, {}, 400, "json_too_deep"),
        ("/chat/stream?protocol=ai-sdk", b'{"id": "x", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400,
         "json_too_deep"),
        ("/chat/stream", json.dumps({**CHAT, "extra": nested(MAX_DEPTH)}).encode(), {}, 400, "json_too_deep"),
        ("/sessions", b'{"provider": "simulated", "model": 1' + b"0" * 5000 + b"}", {}, 400, "invalid_json"),
        ("/sessions", b'{"provider": "simulated", "model": 1e999999}', {}, 422, "validation_error"),
        ("/chat/stream", json.dumps(CHAT).encode("utf-16"), {}, 400, "invalid_json"),
    ],
)
def test_rejected_request_gets_a_clear_error_and_writes_nothing(client, dynamodb, path, content, headers, status,
                                                                code):
    before = count_items(dynamodb)
    response = client.post(path, content=content, headers={"content-type": "application/json", **headers})
    assert_error(response, status, code)
    assert count_items(dynamodb) == before


def test_body_larger_than_declared_limit_is_refused_while_streaming_in(client, dynamodb):
    before = count_items(dynamodb)

    def body():
        yield b'{"chatSessionId": "' + DEMO_SESSION_ID.encode() + b'", "content": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    response = client.post("/chat/stream", content=body(), headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert count_items(dynamodb) == before


def test_nesting_up_to_the_limit_and_brackets_inside_strings_are_accepted(client):
    # GIVEN a body that nests exactly MAX_DEPTH levels, and strings full of brackets and escaped quotes
    session = {"provider": "simulated", "model": "sim", "title": '[{"\\"' * 40, "extra": nested(MAX_DEPTH - 1)}
    # WHEN it is posted
    response = client.post("/sessions", json=session)
    # THEN it is an ordinary request
    assert response.status_code == 201, response.text


def test_unknown_session_messages_are_404(client):
    assert_error(client.get("/sessions/01HZY0000000000000000NOPE0/messages"), 404, "session_not_found")
    assert_error(client.get("/sessions/not-an-id/messages"), 404, "session_not_found")


def test_unknown_route_and_wrong_method_are_json_errors(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/chat/stream"), 405, "method_not_allowed")


def test_a_model_the_deployment_does_not_offer_is_refused_and_writes_nothing(stack, dynamodb):
    from relay.config import Settings

    offered = {**Settings.from_environment().models, "simulated": ["sim"], "openai": ["gpt-x"]}
    before = count_items(dynamodb)
    with app_client(dynamodb, models=offered) as http:
        unlisted = http.post("/sessions", json={"provider": "simulated", "model": "sim:tokens=9"})
        fallback = http.post("/sessions", json={"provider": "simulated", "model": "sim",
                                                "fallbacks": [{"provider": "openai", "model": "gpt-4-pricey"}]})
        assert count_items(dynamodb) == before
        listed = http.post("/sessions", json={"provider": "simulated", "model": "sim",
                                              "fallbacks": [{"provider": "openai", "model": "gpt-x"}]})
    assert_error(unlisted, 422, "model_not_offered")
    assert "sim" in unlisted.json()["error"]["message"]
    assert_error(fallback, 422, "model_not_offered")
    assert listed.status_code == 201
