"""The simulated provider's answers (devtools/simulated_provider.py): what `make dev` shows a newcomer by default,
and the tricky words the framing tests ask for. (Each wire format is tested in test_providers.py.)"""

import httpx
import pytest

from devtools.simulated_provider import Scenario, answer_tokens
from tests.helpers import messages_of, new_session, stream_chat


def test_the_default_answer_is_a_finished_text_with_nothing_that_looks_like_the_wire_format(client):
    # GIVEN a session of the simulated provider with its default answer (as `make dev`'s demo session has)
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0")
    # WHEN it answers
    stream_chat(client, chat_session_id, "Hello")
    _, ai = messages_of(client, chat_session_id)
    # THEN the answer is whole sentences, ending with the last one's full stop, and no SSE field names
    text = ai["content"]
    assert text == "".join(answer_tokens(Scenario().tokens))
    assert text.endswith(".") and "data:" not in text and "event:" not in text
    assert all(paragraph[0].isupper() and paragraph.endswith(".") for paragraph in text.split("\n\n"))


def test_a_longer_answer_starts_each_round_of_the_words_as_a_paragraph():
    words = len(answer_tokens(Scenario().tokens))
    once = "".join(answer_tokens(words))
    assert "".join(answer_tokens(2 * words)) == once + "\n\n" + once
    assert len(answer_tokens(2 * words + 3)) == 2 * words + 3  # one token per count, as the provider bills


def test_tricky_words_hold_sse_like_text_and_characters_beyond_ascii():
    scenario = Scenario().with_model_parameters("sim:tokens=23,words=tricky")
    text = "".join(answer_tokens(scenario.tokens, scenario.words))
    assert "data:" in text and "event:" in text and "café" in text and "🙂" in text


def test_unknown_words_are_refused():
    with pytest.raises(ValueError, match="unknown words 'poetry'"):
        Scenario().with_model_parameters("sim:words=poetry")


WIRE_FORMATS = {  # path, query, headers, and a body of one user message of the given text
    "anthropic": ("/v1/messages", {}, {"x-api-key": "k", "anthropic-version": "2023-06-01"},
                  lambda text: {"model": "sim", "max_tokens": 10, "stream": True,
                                "messages": [{"role": "user", "content": text}]}),
    "gemini": ("/v1beta/models/sim:streamGenerateContent", {"alt": "sse"}, {"x-goog-api-key": "k"},
               lambda text: {"contents": [{"role": "user", "parts": [{"text": text}]}]}),
    "bedrock": ("/model/sim/converse-stream", {}, {"authorization": "AWS4-HMAC-SHA256 Credential=k"},
                lambda text: {"messages": [{"role": "user", "content": [{"text": text}]}]}),
    "openai": ("/v1/chat/completions", {}, {"authorization": "Bearer k"},
               lambda text: {"model": "sim", "stream": True, "messages": [{"role": "user", "content": text}]}),
}


@pytest.mark.parametrize(("wire_format", "refused"), [("anthropic", True), ("gemini", True), ("bedrock", True),
                                                      ("openai", False)])
def test_a_user_message_of_no_text_is_refused_where_the_real_api_refuses_it(stack, wire_format, refused):
    # Anthropic, Gemini and Bedrock answer it with a 400 (so must the simulator, or a relay sending one passes here)
    path, query, headers, body = WIRE_FORMATS[wire_format]
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=2"
    path = path.replace("/sim", "/" + model) if wire_format in ("gemini", "bedrock") else path

    def status(text: str) -> int:
        sent = body(text) | ({"model": model} if "model" in body(text) else {})
        return httpx.post(stack.provider_server.url + path, params=query, headers=headers, json=sent).status_code

    assert status("hi") == 200
    assert status("") == (400 if refused else 200)
