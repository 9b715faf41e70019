"""Reasoning through the real local stack (uvicorn, moto's DynamoDB, the simulated provider in each wire format):
the session's option and each provider's own parameter for it, the reasoning stream before the answer, stored
beside it, in the metrics, and never sent back to the provider."""

import json
from typing import Any

import httpx
import pytest

from devtools.simulated_provider import REDACTED, SIGNATURE, answer_tokens, reasoning_tokens
from tests.helpers import count_items, emf_lines, last_record, messages_of, new_session, stream_chat

FAST = "first_token_ms=0,tokens_per_second=0,tokens=6,reasoning=9"
# The model each provider's session names: Bedrock maps the option for Claude only, so its model says it is one.
MODELS = {"anthropic": f"sim:{FAST}", "azure-openai": f"sim:{FAST}", "gemini": f"sim:{FAST}", "openai": f"sim:{FAST}",
          "openai-responses": f"sim:{FAST}", "bedrock": f"anthropic.claude-sonnet-4-5:{FAST}"}
LOW = 1024  # reasoning.EFFORT_BUDGET_TOKENS["low"]
# Each provider's parameter for {"effort": "low"}, as the simulated provider received it.
PARAMETERS = {
    "openai": lambda body: body["reasoning_effort"] == "low",
    "azure-openai": lambda body: body["reasoning_effort"] == "low",
    "openai-responses": lambda body: body["reasoning"] == {"effort": "low", "summary": "auto"},
    "anthropic": lambda body: body["thinking"] == {"type": "enabled", "budget_tokens": LOW}
    and body["max_tokens"] == LOW + 4096,
    "gemini": lambda body: body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": LOW,
                                                                           "includeThoughts": True}},
    "bedrock": lambda body: body["additionalModelRequestFields"] == {"thinking": {"type": "enabled",
                                                                                 "budget_tokens": LOW}}
    and body["inferenceConfig"]["maxTokens"] == LOW + 4096,
}
COUNTED_APART = {"openai", "azure-openai", "openai-responses", "gemini"}  # the others fold reasoning into output
SIGNED = {"anthropic", "bedrock"}  # the formats that sign their reasoning and send redacted blocks


def reasoning_session(client: httpx.Client, provider: str, model: str, reasoning: Any) -> str:
    response = client.post("/sessions", json={"provider": provider, "model": model, "reasoning": reasoning})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_every_providers_reasoning_streams_before_the_answer_and_is_stored_beside_it(client, stack, provider):
    # GIVEN a session that asks for low effort, on a model that reasons in its provider's own wire format
    model = MODELS[provider]
    chat_session_id = reasoning_session(client, provider, model, {"effort": "low"})
    # WHEN an answer streams
    received = stream_chat(client, chat_session_id, "Think first")
    # THEN the provider was asked in its own terms
    record = last_record(stack, model)
    assert PARAMETERS[provider](record.body), record.body
    # AND the reasoning came as reasoning events, whole and in order, before the answer's tokens; the shapes no
    # client knows (sent by every format) and the signatures and redacted blocks added nothing to it
    names = [name for name, _ in received.events]
    assert names == ["start", *["reasoning"] * 9, *["token"] * 6, "done"]
    assert received.reasoning == reasoning_tokens(9) and received.tokens == answer_tokens(6)
    shown = json.dumps(received.events)
    assert SIGNATURE not in shown and REDACTED not in shown
    # AND the answer is stored with its reasoning beside its content, each whole
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"], ai["reasoning"]) == ("complete", "".join(answer_tokens(6)),
                                                              "".join(reasoning_tokens(9)))
    # AND the usage counts the reasoning where the provider counts it apart
    done = received.one("done")
    expected_usage = {"inputTokens": 2, "outputTokens": 15}
    if provider in COUNTED_APART:
        expected_usage["reasoningTokens"] = 9
    assert done["usage"] == ai["metadata"]["usage"] == expected_usage
    assert 0 <= done["timeToFirstReasoningMs"] <= done["ttftMs"]
    # AND a redacted block is noted, never shown; the signature is kept out of the API
    notes = ai["metadata"].get("notes", [])
    assert [note["code"] for note in notes] == (["reasoning_redacted"] if provider in SIGNED else [])
    assert SIGNATURE not in json.dumps(messages_of(client, chat_session_id))


@pytest.mark.parametrize(("provider", "model", "named"), [
    ("openai", "gpt-4o-mini:first_token_ms=0,tokens_per_second=0,tokens=3", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-haiku-latest:first_token_ms=0,tokens_per_second=0,tokens=3", "claude-3-5-haiku"),
    ("bedrock", "amazon.nova-pro-v1:first_token_ms=0,tokens_per_second=0,tokens=3", "Claude"),
])
def test_a_model_without_reasoning_ignores_the_option_with_a_note_never_an_error(client, stack, provider, model,
                                                                                  named):
    chat_session_id = reasoning_session(client, provider, model, {"budgetTokens": 2048})
    received = stream_chat(client, chat_session_id)
    assert received.tokens == answer_tokens(3)
    body = json.dumps(last_record(stack, model).body)
    assert not any(name in body for name in ("reasoning", "thinking", "additionalModelRequestFields"))
    _, ai = messages_of(client, chat_session_id)
    [note] = ai["metadata"]["notes"]
    assert ai["status"] == "complete" and note["code"] == "reasoning_ignored" and named in note["message"]


def test_a_server_that_reasons_unasked_is_relayed_and_sent_no_option(client, stack):
    # DeepSeek's reasoner and vLLM's reasoning parsers stream reasoning_content whatever the request says.
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,reasoning=5"
    chat_session_id = new_session(client, model)
    received = stream_chat(client, chat_session_id)
    assert received.reasoning == reasoning_tokens(5) and received.tokens == answer_tokens(4)
    assert "reasoning_effort" not in last_record(stack, model).body
    _, ai = messages_of(client, chat_session_id)
    assert ai["reasoning"] == "".join(reasoning_tokens(5)) and "notes" not in ai["metadata"]


@pytest.mark.parametrize("reasoning", [
    {"effort": "maximum"}, {"effort": None}, {"budgetTokens": 1023}, {"budgetTokens": 24_577}, {"budgetTokens": True},
    {"budgetTokens": "2048"}, {"effort": "low", "budgetTokens": 2048}, {"Effort": "low"}, {}, "high", ["low"], 3,
])
def test_a_reasoning_option_that_means_nothing_is_refused_and_writes_nothing(client, dynamodb, reasoning):
    before = count_items(dynamodb)
    response = client.post("/sessions", json={"provider": "simulated", "model": "sim", "reasoning": reasoning})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error" and "reasoning" in response.json()["error"]["message"]
    assert count_items(dynamodb) == before


def test_a_budget_is_sent_as_the_nearest_effort_to_a_provider_that_takes_efforts(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=2"
    stream_chat(client, reasoning_session(client, "openai", model, {"budgetTokens": 8193}))
    assert last_record(stack, model).body["reasoning_effort"] == "high"  # more than medium's 8,192


def test_reasoning_is_never_sent_back_as_history(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,reasoning=6"
    chat_session_id = reasoning_session(client, "anthropic", model, {"effort": "high"})
    first = stream_chat(client, chat_session_id, "First question")
    stream_chat(client, chat_session_id, "Second question")
    assert last_record(stack, model).body["messages"] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "".join(first.tokens)},
        {"role": "user", "content": "Second question"},
    ]
    assert "".join(first.reasoning) not in json.dumps(last_record(stack, model).body)


def test_plain_text_streams_the_answer_without_its_reasoning(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5,reasoning=7")
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"},
                           headers={"accept": "text/plain"})
    assert response.text == "".join(answer_tokens(5))


def test_the_metrics_add_the_time_to_the_first_reasoning_and_the_reasoning_tokens(client, capsys):
    model = "sim:first_token_ms=0,tokens_per_second=50,tokens=4,reasoning=6"
    chat_session_id = reasoning_session(client, "gemini", model, {"effort": "medium"})
    capsys.readouterr()
    done = stream_chat(client, chat_session_id).one("done")
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model and "Requests" in b]
    assert blob["ReasoningTokens"] == [6.0] and blob["OutputTokens"] == [10.0]
    assert blob["TimeToFirstReasoning"] == [done["timeToFirstReasoningMs"]]
    # TimeToFirstToken stays the answer's first text, which comes after the six reasoning deltas
    assert blob["TimeToFirstReasoning"][0] < blob["TimeToFirstToken"][0] == done["ttftMs"]
    units = {m["Name"]: m for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["TimeToFirstReasoning"] == {"Name": "TimeToFirstReasoning", "Unit": "Milliseconds",
                                             "StorageResolution": 1}


def test_a_turn_without_reasoning_reports_none(client, capsys):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=91"
    chat_session_id = new_session(client, model)
    capsys.readouterr()
    done = stream_chat(client, chat_session_id).one("done")
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model and "Requests" in b]
    assert "TimeToFirstReasoning" not in blob and "ReasoningTokens" not in blob
    assert "timeToFirstReasoningMs" not in done and "reasoningTokens" not in done["usage"]
    _, ai = messages_of(client, chat_session_id)
    assert "reasoning" not in ai
