import json

import pytest

from relay.errors import (
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_ERROR,
    PROVIDER_INCOMPLETE,
    PROVIDER_RATE_LIMITED,
    PROVIDER_UNAVAILABLE,
    ProviderError,
    provider_error_for_status,
)
from relay.events import Finish, TextDelta, Usage
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.openai import ChunkParser, request_body


def chunk(delta=None, finish_reason=None, **extra):
    choice = {"index": 0, "delta": delta if delta is not None else {}, "logprobs": None, "finish_reason": finish_reason}
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [choice], "usage": None, **extra})


def test_first_chunk_with_role_and_empty_content_yields_nothing():
    assert ChunkParser().feed(chunk({"role": "assistant", "content": "", "refusal": None})) == []


def test_content_delta_becomes_text_delta_verbatim():
    text = "line one\n\ndata: not a field\u2028"
    assert ChunkParser().feed(chunk({"content": text})) == [TextDelta(text)]


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter", "function_call"])
def test_finish_reason_becomes_finish(reason):
    assert ChunkParser().feed(chunk({}, reason)) == [Finish(reason)]


def test_usage_chunk_with_empty_choices_becomes_usage():
    data = json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}})
    assert ChunkParser().feed(data) == [Usage(input_tokens=12, output_tokens=34)]


def test_chunk_without_delta_or_choices_is_ignored():
    parser = ChunkParser()
    assert parser.feed(json.dumps({"id": "", "choices": [{"index": 0, "finish_reason": None}]})) == []
    assert parser.feed(json.dumps({"id": "", "choices": []})) == []


def test_done_marks_the_stream_finished():
    parser = ChunkParser()
    assert parser.feed("[DONE]") == []
    parser.finish()  # does not raise


def test_stream_without_done_is_incomplete():
    parser = ChunkParser()
    parser.feed(chunk({"content": "partial"}))
    with pytest.raises(ProviderError) as caught:
        parser.finish()
    assert caught.value.code == PROVIDER_INCOMPLETE


def test_error_after_http_200_raises_provider_error():
    data = json.dumps({"error": {"message": "The server had an error", "type": "server_error"}})
    with pytest.raises(ProviderError) as caught:
        ChunkParser().feed(data)
    assert caught.value.code == PROVIDER_ERROR
    assert "The server had an error" in caught.value.message


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '"text"'])
def test_malformed_chunk_raises_provider_error(data):
    with pytest.raises(ProviderError) as caught:
        ChunkParser().feed(data)
    assert caught.value.code == PROVIDER_ERROR


def test_request_body_asks_for_a_stream_with_usage_and_puts_system_first():
    request = ChatRequest("gpt-4o-mini", [ChatMessage("user", "hi"), ChatMessage("assistant", "hello")], "be brief")
    assert request_body(request) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, PROVIDER_AUTH), (403, PROVIDER_AUTH), (429, PROVIDER_RATE_LIMITED), (500, PROVIDER_UNAVAILABLE),
     (503, PROVIDER_UNAVAILABLE), (529, PROVIDER_UNAVAILABLE), (400, PROVIDER_BAD_REQUEST),
     (404, PROVIDER_BAD_REQUEST)],
)
def test_http_status_maps_to_stable_code(status, code):
    assert provider_error_for_status("openai", status, "detail").code == code


def test_auth_error_never_repeats_the_providers_message():
    error = provider_error_for_status("openai", 401, "Incorrect API key provided: sk-abc***xyz")
    assert "sk-" not in error.message
    assert "openai" in error.message and "key" in error.message
