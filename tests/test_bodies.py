"""Request bodies checked against the API's schema, over real loopback HTTP: a body the schema rules out is a 422
whose message names the field at fault and what it must be, and writes nothing; what the schema leaves open
(fields a client adds) is accepted."""

from __future__ import annotations

import json

import pytest

from relay import config
from tests.helpers import count_items, new_session

SESSION = {"provider": "simulated", "model": "sim"}
FALLBACK = {"provider": "simulated", "model": "sim"}


@pytest.mark.parametrize(("body", "message"), [
    (["not", "an", "object"], "the body must be a JSON object"),
    ({"model": "sim"}, "provider is required"),
    ({**SESSION, "model": 7}, "model must be a string"),
    ({**SESSION, "model": " \u3000\x1c"}, "model must not be empty"),
    ({**SESSION, "title": "t" * (config.MAX_TITLE_CHARS + 1)}, f"title must be at most {config.MAX_TITLE_CHARS} "),
    ({**SESSION, "system": "a\ud800"}, "system must be valid Unicode text"),
    ({**SESSION, "fallbacks": [FALLBACK, {"provider": "simulated"}]}, "fallbacks[1].model is required"),
    ({**SESSION, "fallbacks": [FALLBACK] * (config.MAX_FALLBACKS + 1)},
     f"fallbacks must hold at most {config.MAX_FALLBACKS} items"),
    ({**SESSION, "fallbacks": ["simulated"]}, "fallbacks[0] must be a JSON object"),
    ({**SESSION, "reasoning": {"effort": "low", "budgetTokens": 2048}}, 'reasoning must be {"effort": "low" | '),
])
def test_a_session_body_the_schema_rules_out_is_a_422_naming_its_field(client, dynamodb, body, message):
    before = count_items(dynamodb)
    # ASCII-escaped, as JSON may send a lone surrogate ("\ud800") that UTF-8 cannot
    response = client.post("/sessions", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["message"].startswith(message)
    assert count_items(dynamodb) == before


@pytest.mark.parametrize(("body", "message"), [
    ({"regenerate": True, "content": "hi"}, "a regenerate answers the last message again: it takes no content"),
    ({"regenerate": 1}, "regenerate must be true or false"),
    ({"content": None}, "content is required"),
    ({"content": "hi", "clientMessageId": "a b"}, "clientMessageId must be 1 to 64 letters, digits"),
    ({"content": "x" * (config.MAX_CONTENT_CHARS + 1)}, f"content must be at most {config.MAX_CONTENT_CHARS} "),
    ({"chatSessionId": None, "content": "hi"}, "chatSessionId must be a string"),
])
def test_a_chat_body_the_schema_rules_out_is_a_422_naming_its_field(client, dynamodb, body, message):
    chat_session_id = new_session(client)
    before = count_items(dynamodb)
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(message)
    assert count_items(dynamodb) == before


@pytest.mark.parametrize(("message", "detail"), [
    ({"role": "user", "parts": [{"type": "text", "text": 7}]}, "messages[0].parts[0].text must be a string"),
    ({"role": "user", "parts": "hi"}, "messages[0].parts must be a list"),
    ({"role": "user", "parts": [{"type": "text", "text": "x" * 9000}, {"type": "text", "text": "y" * 9000}]},
     f"content must be at most {config.MAX_CONTENT_CHARS} characters"),  # the text parts together
    ({"id": "m 1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}, "clientMessageId must be 1 to 64"),
])
def test_an_ai_sdk_body_is_checked_as_the_chat_request_it_stands_for(client, dynamodb, message, detail):
    chat_session_id = new_session(client)
    before = count_items(dynamodb)
    response = client.post("/chat/stream", params={"protocol": "ai-sdk"},
                           json={"id": chat_session_id, "messages": [message]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(detail)
    assert count_items(dynamodb) == before


def test_fields_a_client_adds_are_ignored(client):
    # GIVEN bodies with fields of the client's own, as useChat's transport adds them
    session = client.post("/sessions", json={**SESSION, "color": "blue", "tags": [1, 2]})
    assert session.status_code == 201, session.text
    chat_session_id = session.json()["chatSessionId"]
    # WHEN a message is sent with more of them THEN it is answered
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi",
                                                 "trigger": "submit-message", "metadata": {"a": None}})
    assert response.status_code == 200 and "event: done" in response.text


def test_a_patch_that_changes_nothing_is_a_422(client, dynamodb):
    chat_session_id = new_session(client)
    before = count_items(dynamodb)
    response = client.patch(f"/sessions/{chat_session_id}", json={"title": None, "unknown": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("give at least one of: title, system")
    assert count_items(dynamodb) == before
