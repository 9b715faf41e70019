"""Each provider's I/O-free parser, one wire-format case per test (the shapes are from the providers' docs)."""

import json

import pytest
from botocore.exceptions import ClientError, EventStreamError, NoCredentialsError

from relay.errors import ProviderError
from relay.events import Finish, ReasoningDelta, ReasoningRedacted, ReasoningSignature, TextDelta, Usage
from relay.providers import anthropic, bedrock, gemini, openai, openai_responses
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.openai import ChunkParser
from relay.providers.streaming import error_detail
from relay.reasoning import ReasoningOption


def data(payload) -> str:
    return json.dumps(payload)


# Anthropic Messages

def test_anthropic_text_deltas_usage_and_stop_reason():
    parser = anthropic.EventParser()
    assert parser.feed(data({"type": "message_start", "message": {"usage": {"input_tokens": 12, "output_tokens": 1}}}),
                       "message_start") == []
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    assert parser.feed(data(delta), "content_block_delta") == [TextDelta("Hi")]
    assert parser.feed(data({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 40}}), "message_delta") == [Usage(12, 40), Finish("end_turn")]
    assert not parser.finished
    parser.feed(data({"type": "message_stop"}), "message_stop")
    parser.finish()


def test_anthropic_cumulative_output_usage_is_not_added_up():
    parser = anthropic.EventParser()
    parser.feed(data({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}))
    parser.feed(data({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 10}}))
    assert parser.feed(data({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 25}})) == [Usage(5, 25)]


def test_anthropic_ping_unknown_events_and_non_text_deltas_are_ignored():
    parser = anthropic.EventParser()
    assert parser.feed(data({"type": "ping"}), "ping") == []
    assert parser.feed(data({"type": "brand_new_event", "x": 1}), "brand_new_event") == []
    assert parser.feed(data({"type": "content_block_delta", "delta": {"type": "input_json_delta",
                                                                      "partial_json": "{"}})) == []


def test_anthropic_error_event_after_http_200():
    with pytest.raises(ProviderError) as caught:
        anthropic.EventParser().feed(data({"type": "error", "error": {"type": "overloaded_error",
                                                                      "message": "Overloaded"}}), "error")
    assert caught.value.code == "provider_error" and "Overloaded" in caught.value.message


def test_anthropic_stream_without_message_stop_is_incomplete():
    parser = anthropic.EventParser()
    parser.feed(data({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}))
    with pytest.raises(ProviderError) as caught:
        parser.finish()
    assert caught.value.code == "provider_incomplete"


def test_anthropic_request_has_max_tokens_and_separate_system():
    body = anthropic.request_body(ChatRequest("claude", [ChatMessage("user", "hi")], "be brief"), 1024)
    assert body == {"model": "claude", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}],
                    "stream": True, "system": "be brief"}


# Google Gemini

def gemini_chunk(text=None, finish=None, usage=None, **extra):
    candidate = {"content": {"parts": [{"text": text}] if text is not None else [], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return data({"candidates": [candidate], **({"usageMetadata": usage} if usage else {}), **extra})


def test_gemini_text_usage_and_finish_reason():
    parser = gemini.ChunkParser()
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
    assert parser.feed(gemini_chunk("Hel", usage=usage)) == [TextDelta("Hel"), Usage(4, 2)]
    last = {"promptTokenCount": 4, "candidatesTokenCount": 9, "thoughtsTokenCount": 3, "totalTokenCount": 16}
    assert parser.feed(gemini_chunk("", "STOP", last)) == [Usage(4, 12, 3), Finish("STOP")]
    parser.finish()


def test_gemini_blocked_prompt_has_no_candidates():
    with pytest.raises(ProviderError) as caught:
        gemini.ChunkParser().feed(data({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert caught.value.code == "provider_bad_request" and "SAFETY" in caught.value.message


def test_gemini_thought_parts_are_reasoning_not_answer_text():
    chunk = data({"candidates": [{"content": {"parts": [{"text": "thinking", "thought": True}, {"text": "answer"}]}}]})
    assert gemini.ChunkParser().feed(chunk) == [ReasoningDelta("thinking"), TextDelta("answer")]


def test_gemini_error_chunk_and_missing_finish_reason():
    with pytest.raises(ProviderError) as caught:
        gemini.ChunkParser().feed(data({"error": {"code": 503, "message": "The model is overloaded."}}))
    assert caught.value.code == "provider_error"
    parser = gemini.ChunkParser()
    parser.feed(gemini_chunk("partial"))
    with pytest.raises(ProviderError):
        parser.finish()


def test_gemini_request_uses_model_role_and_system_instruction():
    request = ChatRequest("g", [ChatMessage("user", "a"), ChatMessage("assistant", "b")], "sys")
    assert gemini.request_body(request) == {
        "contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}]},
    }


def test_error_detail_reads_every_providers_error_shape():
    assert error_detail(b'{"error": {"message": "m1", "type": "t"}}') == "m1"
    assert error_detail(b'{"type": "error", "error": {"type": "x", "message": "m2"}}') == "m2"
    assert error_detail(b'[{"error": {"code": 503, "message": "m3", "status": "UNAVAILABLE"}}]') == "m3"
    assert error_detail(b"not json") is None


# Azure OpenAI quirks in the Chat Completions parser

def test_azure_prompt_filter_chunk_and_content_filter_results_are_harmless():
    parser = ChunkParser("azure-openai")
    assert parser.feed(data({"choices": [], "id": "", "model": "", "prompt_filter_results": [{"prompt_index": 0}]})) \
        == []
    filtered = {"index": 0, "delta": {"content": "x"}, "finish_reason": None,
                "content_filter_results": {"hate": {"filtered": False}}}
    assert parser.feed(data({"choices": [filtered]})) == [TextDelta("x")]
    assert parser.feed(data({"choices": [{"index": 0, "finish_reason": None}], "id": ""})) == []


# OpenAI Responses

def test_responses_deltas_and_completed_with_usage():
    parser = openai_responses.EventParser()
    assert parser.feed(data({"type": "response.created", "response": {}}), "response.created") == []
    assert parser.feed(data({"type": "response.output_text.delta", "delta": "Hi"})) == [TextDelta("Hi")]
    completed = {"type": "response.completed",
                 "response": {"status": "completed", "usage": {"input_tokens": 3, "output_tokens": 7}}}
    assert parser.feed(data(completed)) == [Finish("stop"), Usage(3, 7)]
    parser.finish()


def test_responses_incomplete_is_terminal_with_its_reason():
    parser = openai_responses.EventParser()
    incomplete = {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"},
                                                              "usage": {"input_tokens": 1, "output_tokens": 2}}}
    assert parser.feed(data(incomplete)) == [Finish("max_output_tokens"), Usage(1, 2)]
    parser.finish()


@pytest.mark.parametrize("payload", [
    {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}},
    {"type": "error", "code": "server_is_overloaded", "message": "boom"},
])
def test_responses_failed_and_error_events(payload):
    with pytest.raises(ProviderError) as caught:
        openai_responses.EventParser().feed(data(payload))
    assert caught.value.code == "provider_error" and "boom" in caught.value.message


# AWS Bedrock ConverseStream

def test_bedrock_events_become_deltas_finish_and_usage():
    parser = bedrock.EventParser()
    assert parser.feed({"messageStart": {"role": "assistant"}}) == []
    assert parser.feed({"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}}) == [TextDelta("Hi")]
    assert parser.feed({"messageStop": {"stopReason": "max_tokens"}}) == [Finish("max_tokens")]
    assert parser.feed({"metadata": {"usage": {"inputTokens": 3, "outputTokens": 9}, "metrics": {"latencyMs": 5}}}) \
        == [Usage(3, 9)]
    parser.finish()


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "ConverseStream")


@pytest.mark.parametrize(("error", "code"), [
    (client_error("AccessDeniedException", 403), "provider_auth"),
    (client_error("ThrottlingException", 429), "provider_rate_limited"),
    (client_error("ServiceUnavailableException", 503), "provider_unavailable"),
    (client_error("ValidationException", 400), "provider_bad_request"),
    (EventStreamError({"Error": {"Code": "throttlingException", "Message": "m"}}, "ConverseStream"),
     "provider_error"),
    (NoCredentialsError(), "provider_auth"),
])
def test_bedrock_errors_map_to_stable_codes(error, code):
    assert bedrock.provider_error("bedrock", error).code == code


def test_bedrock_request_puts_text_in_content_blocks():
    kwargs = bedrock.request_kwargs(ChatRequest("m", [ChatMessage("user", "hi")], "sys"))
    assert kwargs == {"modelId": "m", "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                      "system": [{"text": "sys"}]}


# Events of other shapes than documented: the turn ends with provider_error, never an unexpected exception

ODD_EVENTS = [
    (ChunkParser, "message", {"choices": ["not an object"]}),
    (ChunkParser, "message", {"choices": [{"delta": {"content": ["a", "list"]}}]}),
    (ChunkParser, "message", {"choices": [{"delta": {}, "finish_reason": {"an": "object"}}]}),
    (ChunkParser, "message", {"choices": [], "usage": {"prompt_tokens": "many"}}),
    (ChunkParser, "message", {"choices": [], "usage": {"prompt_tokens": 1e999}}),
    # Counts no float holds (the tokens per second divide by it), that DynamoDB cannot store, or below zero
    (ChunkParser, "message", {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 10**400}}),
    (ChunkParser, "message", {"choices": [], "usage": {"prompt_tokens": 10**300, "completion_tokens": 1}}),
    (ChunkParser, "message", {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": -5}}),
    (anthropic.EventParser, "message_delta", {"type": "message_delta", "usage": {"output_tokens": 10**400}}),
    (gemini.ChunkParser, "message", {"candidates": [], "usageMetadata": {"candidatesTokenCount": 10**400}}),
    (anthropic.EventParser, "content_block_delta", {"type": "content_block_delta", "delta": "text"}),
    (anthropic.EventParser, "content_block_delta", {"type": "content_block_delta",
                                                    "delta": {"type": "text_delta", "text": 7}}),
    (anthropic.EventParser, "message_start", {"type": "message_start", "message": ["x"]}),
    (gemini.ChunkParser, "message", {"candidates": "one"}),
    (gemini.ChunkParser, "message", {"candidates": [{"content": {"parts": ["text"]}}]}),
    (openai_responses.EventParser, "response.completed", {"type": "response.completed", "response": ["x"]}),
    (openai_responses.EventParser, "response.output_text.delta", {"type": "response.output_text.delta",
                                                                  "delta": {"text": "x"}}),
]


@pytest.mark.parametrize(("parser", "event", "payload"), ODD_EVENTS)
def test_an_event_of_another_shape_than_documented_is_provider_error_after_the_text_so_far(parser, event, payload):
    import asyncio

    from relay.providers.streaming import parsed
    from relay.sse import ServerSentEvent

    good = {ChunkParser: {"choices": [{"delta": {"content": "Hi"}}]},
            anthropic.EventParser: {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
            gemini.ChunkParser: {"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]},
            openai_responses.EventParser: {"type": "response.output_text.delta", "delta": "Hi"}}[parser]

    async def batches():
        yield [ServerSentEvent(data=data(good)), ServerSentEvent(event, data(payload))]

    async def read() -> tuple[list[str], ProviderError]:
        texts = []
        with pytest.raises(ProviderError) as raised:
            async for batch in parsed(batches(), parser()):
                texts += [event.text for event in batch if isinstance(event, TextDelta)]
        return texts, raised.value

    texts, error = asyncio.run(read())
    assert texts == ["Hi"]
    assert error.code == "provider_error"


def test_an_event_nested_past_the_recursion_limit_is_a_malformed_event():
    with pytest.raises(ProviderError) as raised:
        ChunkParser("openai").feed("[" * 100_000 + "]" * 100_000)
    assert raised.value.code == "provider_error"
    assert error_detail("[" * 100_000) is None


# Reasoning, in each wire format

def test_anthropic_thinking_block_is_reasoning_its_signature_kept_and_a_redacted_block_noted():
    parser = anthropic.EventParser()
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    assert parser.feed(data(start)) == []
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}}
    assert parser.feed(data(thinking)) == [ReasoningDelta("Hmm")]
    signature = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQ="}}
    assert parser.feed(data(signature)) == [ReasoningSignature("EqQ=")]
    redacted = {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking",
                                                                              "data": "EmwKAhgB"}}
    assert parser.feed(data(redacted)) == [ReasoningRedacted()]


@pytest.mark.parametrize("delta", [
    {"type": "thinking_summary_delta", "summary": "new"},  # a delta type added later
    {"type": "thinking_delta", "thinking": {"nested": "shape"}},  # a known type with an unknown shape
    {"type": "thinking_delta"},
])
def test_anthropic_unknown_reasoning_shapes_are_skipped(delta):
    assert anthropic.EventParser().feed(data({"type": "content_block_delta", "index": 0, "delta": delta})) == []


def test_anthropic_request_asks_for_thinking_within_a_larger_max_tokens():
    request = ChatRequest("claude-sonnet-4-5", [ChatMessage("user", "hi")], reasoning=ReasoningOption(effort="low"))
    body = anthropic.request_body(request, 4096)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 1024 + 4096  # the answer keeps its own room beside the budget


def test_anthropic_model_without_thinking_is_sent_no_thinking():
    request = ChatRequest("claude-3-5-haiku-latest", [ChatMessage("user", "hi")],
                          reasoning=ReasoningOption(budget_tokens=2000))
    assert "thinking" not in anthropic.request_body(request, 4096)
    assert "claude-3-5-haiku-latest" in anthropic.reasoning_unsupported("claude-3-5-haiku-latest")
    assert anthropic.reasoning_unsupported("claude-3-7-sonnet-latest") is None


def test_openai_compatible_reasoning_content_and_reasoning_are_reasoning_and_their_count_is_read():
    parser = ChunkParser("openai")
    assert parser.feed(data({"choices": [{"index": 0, "delta": {"reasoning_content": "Let"}}]})) \
        == [ReasoningDelta("Let")]
    assert parser.feed(data({"choices": [{"index": 0, "delta": {"reasoning": " me"}}]})) == [ReasoningDelta(" me")]
    both = {"reasoning_content": " see", "reasoning": " see"}  # a server sending both names: once, not twice
    assert parser.feed(data({"choices": [{"index": 0, "delta": both}]})) == [ReasoningDelta(" see")]
    usage = {"prompt_tokens": 3, "completion_tokens": 20, "completion_tokens_details": {"reasoning_tokens": 12}}
    assert parser.feed(data({"choices": [], "usage": usage})) == [Usage(3, 20, 12)]


@pytest.mark.parametrize("delta", [{"reasoning": {"encrypted": "x"}}, {"reasoning_details": [{"type": "x"}]},
                                   {"reasoning_content": None}])
def test_openai_unknown_reasoning_shapes_are_skipped(delta):
    assert ChunkParser("openai").feed(data({"choices": [{"index": 0, "delta": delta}]})) == []


def test_openai_reasoning_effort_goes_to_reasoning_models_only():
    reasoning = ReasoningOption(budget_tokens=8000)
    body = openai.request_body(ChatRequest("o4-mini", [ChatMessage("user", "hi")], reasoning=reasoning))
    assert body["reasoning_effort"] == "medium"  # 8,000 tokens is within medium's 8,192
    plain = openai.request_body(ChatRequest("gpt-4o-mini", [ChatMessage("user", "hi")], reasoning=reasoning))
    assert "reasoning_effort" not in plain
    assert "gpt-4o-mini" in openai.reasoning_unsupported("gpt-4o-mini")


def test_responses_reasoning_summary_deltas_with_parts_set_apart_and_the_reasoning_count():
    parser = openai_responses.EventParser()
    def summary(delta, index):
        return data({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0,
                     "summary_index": index, "delta": delta})
    assert parser.feed(summary("**Plan**", 0)) == [ReasoningDelta("**Plan**")]
    assert parser.feed(summary(" more", 0)) == [ReasoningDelta(" more")]
    assert parser.feed(summary("**Check**", 1)) == [ReasoningDelta("\n\n**Check**")]
    raw = {"type": "response.reasoning_text.delta", "item_id": "rs_1", "content_index": 0, "delta": "raw"}
    assert parser.feed(data(raw)) == [ReasoningDelta("\n\nraw")]
    assert parser.feed(data({"type": "response.reasoning_summary_part.added", "item_id": "rs_1"})) == []
    usage = {"input_tokens": 3, "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 24}}
    completed = {"type": "response.completed", "response": {"usage": usage}}
    assert parser.feed(data(completed)) == [Finish("stop"), Usage(3, 30, 24)]


def test_responses_request_asks_for_effort_and_a_summary():
    request = ChatRequest("o3", [ChatMessage("user", "hi")], reasoning=ReasoningOption(effort="high"))
    assert openai_responses.request_body(request)["reasoning"] == {"effort": "high", "summary": "auto"}


def test_gemini_request_asks_for_a_budget_and_the_thoughts_and_an_older_model_is_not():
    request = ChatRequest("gemini-2.5-flash", [ChatMessage("user", "a")], reasoning=ReasoningOption(effort="medium"))
    assert gemini.request_body(request)["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}}
    older = ChatRequest("gemini-2.0-flash", [ChatMessage("user", "a")], reasoning=ReasoningOption(effort="medium"))
    assert "generationConfig" not in gemini.request_body(older)


def test_gemini_thought_signature_without_text_is_skipped():
    chunk = data({"candidates": [{"content": {"parts": [{"thought": True, "thoughtSignature": "c2ln"}]}}]})
    assert gemini.ChunkParser().feed(chunk) == []


def test_bedrock_reasoning_content_text_signature_and_one_note_per_redacted_block():
    parser = bedrock.EventParser()
    def reasoning(content, index=0):
        return {"contentBlockDelta": {"delta": {"reasoningContent": content}, "contentBlockIndex": index}}
    assert parser.feed(reasoning({"text": "Hmm"})) == [ReasoningDelta("Hmm")]
    assert parser.feed(reasoning({"signature": "c2ln"})) == [ReasoningSignature("c2ln")]
    assert parser.feed(reasoning({"redactedContent": b"\x01"}, 1)) == [ReasoningRedacted()]
    assert parser.feed(reasoning({"redactedContent": b"\x02"}, 1)) == []  # the same block, in another piece
    assert parser.feed(reasoning({"summary": "a member added later"}, 2)) == []
    assert parser.feed({"contentBlockDelta": {"delta": {"reasoningContent": "not an object"}}}) == []


def test_bedrock_request_asks_claude_for_thinking_and_leaves_other_models_alone():
    reasoning = ReasoningOption(budget_tokens=2048)
    claude = bedrock.request_kwargs(ChatRequest("us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                                [ChatMessage("user", "hi")], reasoning=reasoning), 4096)
    assert claude["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert claude["inferenceConfig"] == {"maxTokens": 2048 + 4096}
    nova = bedrock.request_kwargs(ChatRequest("amazon.nova-pro-v1:0", [ChatMessage("user", "hi")],
                                              reasoning=reasoning))
    assert "additionalModelRequestFields" not in nova
    assert bedrock.reasoning_unsupported("anthropic.claude-3-5-sonnet-20240620-v1:0") is not None
