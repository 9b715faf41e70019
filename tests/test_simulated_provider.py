"""The simulated provider's answers (devtools/simulated_provider.py): what `make dev` shows a newcomer by default,
and the tricky words the framing tests ask for. (Each wire format is tested in test_providers.py.)"""

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
