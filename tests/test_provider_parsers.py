"""Each provider's I/O-free parser, one wire-format case per test (the shapes are from the providers' docs)."""

import json

import pytest
from botocore.exceptions import ClientError, EventStreamError, NoCredentialsError

from relay.errors import ProviderError
from relay.events import Finish, TextDelta, Usage
from relay.providers import ChatMessage, ChatRequest, anthropic, bedrock, gemini, openai_responses
from relay.providers.openai import ChunkParser
from relay.providers.streaming import error_detail


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
    assert parser.feed(gemini_chunk("", "STOP", last)) == [Usage(4, 12), Finish("STOP")]
    parser.finish()


def test_gemini_blocked_prompt_has_no_candidates():
    with pytest.raises(ProviderError) as caught:
        gemini.ChunkParser().feed(data({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert caught.value.code == "provider_bad_request" and "SAFETY" in caught.value.message


def test_gemini_thought_parts_are_not_answer_text():
    chunk = data({"candidates": [{"content": {"parts": [{"text": "thinking", "thought": True}, {"text": "answer"}]}}]})
    assert gemini.ChunkParser().feed(chunk) == [TextDelta("answer")]


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
