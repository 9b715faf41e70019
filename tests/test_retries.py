"""Retry and fallback before the first token only, over real loopback HTTP against the simulated provider."""

import time
from collections.abc import Iterator

import httpx
import pytest

from devtools.simulated_provider import answer_tokens
from tests.helpers import app_client, emf_lines, messages_of, stream_chat


@pytest.fixture(scope="module")
def retrying(stack, dynamodb) -> Iterator[httpx.Client]:
    with app_client(dynamodb, timeout=60, provider_max_retries=2) as client:
        yield client


def session(client: httpx.Client, model: str, **extra) -> str:
    response = client.post("/sessions", json={"provider": "simulated", "model": model, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


def test_429_then_success_is_retried_honouring_retry_after_ms(retrying, stack, capsys):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault=flaky,fault_at=2"  # counted per model string
    chat_session_id = session(retrying, model)
    started = time.monotonic()
    received = stream_chat(retrying, chat_session_id)
    assert time.monotonic() - started < 2  # retry-after-ms said 50 ms
    assert received.tokens == answer_tokens(4)
    _, ai = messages_of(retrying, chat_session_id)
    assert ai["status"] == "complete"
    assert [a["error"] for a in ai["metadata"]["attempts"]] == ["provider_rate_limited"] * 2
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert (blob["Retries"], blob["Fallbacks"]) == ([2.0], [0.0])


def test_after_the_retries_the_sessions_fallback_answers(retrying, capsys):
    fallback_model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
    chat_session_id = session(retrying, "sim:fault=http_500",
                              fallbacks=[{"provider": "simulated", "model": fallback_model}])
    received = stream_chat(retrying, chat_session_id)
    assert received.tokens == answer_tokens(3)
    _, ai = messages_of(retrying, chat_session_id)
    assert ai["status"] == "complete"
    assert ai["metadata"]["model"] == fallback_model
    assert [a["error"] for a in ai["metadata"]["attempts"]] == ["provider_unavailable"] * 3  # 1 try + 2 retries
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == fallback_model]
    assert (blob["Retries"], blob["Fallbacks"]) == ([2.0], [1.0])


def test_an_auth_error_is_not_retried_and_nothing_is_retried_after_the_first_token(retrying, stack):
    chat_session_id = session(retrying, "sim:fault=http_401")
    assert stream_chat(retrying, chat_session_id).one("error")["code"] == "provider_auth"
    _, ai = messages_of(retrying, chat_session_id)
    assert len(ai["metadata"]["attempts"]) == 1

    model = "sim:first_token_ms=0,tokens_per_second=0,fault=error_after,fault_at=2"
    chat_session_id = session(retrying, model)
    before = len([r for r in stack.provider.records if r.model == model])
    received = stream_chat(retrying, chat_session_id)
    assert received.one("error")["code"] == "provider_error"
    assert len([r for r in stack.provider.records if r.model == model]) == before + 1  # one request, no retry


def test_fallbacks_are_validated(retrying):
    for bad in ("x", [{"provider": "nope", "model": "m"}], [{"provider": "simulated"}], [1], [{}] * 4):
        response = retrying.post("/sessions", json={"provider": "simulated", "model": "sim", "fallbacks": bad})
        assert response.status_code == 422, bad
