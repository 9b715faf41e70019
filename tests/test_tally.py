"""The turn's tally on its own, with a clock the test moves: what it stores and what it reports."""

import pytest

from relay.errors import CANCELLED, DEADLINE, PROVIDER_INCOMPLETE, PROVIDER_RATE_LIMITED, ProviderError
from relay.events import Finish, ReasoningRedacted, ReasoningSignature, Usage
from relay.providers.base import Exchange
from relay.records import COMPLETE, ERROR, INCOMPLETE, INTERRUPTED, PENDING, StoredMessage
from relay.tally import MIN_RATE_SPAN_SECONDS, Tally
from tests.helpers import emf_lines, messages_of, new_session, stream_chat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tally(clock: Clock) -> Tally:
    return Tally("openai", "gpt-test", received_at=clock.now, clock=clock)


PLACEHOLDER = StoredMessage("01J0000000000000000000000B", "ai", "", PENDING, "2026-01-01T00:00:00Z")


def test_only_the_first_delta_counts_as_the_first_token(tally, clock):
    clock.now += 0.25
    assert tally.token("Hel") is True
    clock.now += 0.25
    assert tally.token("lo") is False
    assert tally.ttft_ms == 250.0
    assert tally.reply(PLACEHOLDER).content == "Hello"


def read_reasoning(tally, text):
    tally.reasoning(text)
    tally.read_ended()


def read(tally, clock, *texts, after=0.0):
    """One network read's deltas, ``after`` seconds after the previous one."""
    clock.now += after
    for text in texts:
        tally.token(text)
    tally.read_ended()


def test_an_answer_that_arrives_in_one_read_has_no_speed(tally, clock):
    read(tally, clock, "Hello", " there", "!")
    tally.note(Usage(input_tokens=7, output_tokens=3))
    assert tally.tokens_per_second is None  # not 3 tokens over the microseconds between the deltas of one read


def test_speed_is_the_tokens_after_the_first_read_over_the_time_from_the_first_delta_to_the_last(tally, clock):
    read(tally, clock, "ab")  # generated while the first token was awaited: not part of the rate
    read(tally, clock, "cd", after=0.5)
    read(tally, clock, "ef", after=0.5)
    assert tally.tokens_per_second == 2.0  # two of the three deltas in one second, counted here
    tally.note(Usage(input_tokens=7, output_tokens=6))
    assert tally.tokens_per_second == 4.0  # the provider's count: 6 tokens, 4 of them after the first read's text


def test_reads_closer_than_the_minimum_span_give_no_speed(tally, clock):
    read(tally, clock, "a")
    read(tally, clock, "b", after=MIN_RATE_SPAN_SECONDS / 2)
    assert tally.tokens_per_second is None
    read(tally, clock, "c", after=MIN_RATE_SPAN_SECONDS / 2)
    assert tally.tokens_per_second == round(2 / MIN_RATE_SPAN_SECONDS, 3)


def test_over_http_a_short_answer_in_one_read_reports_no_speed_and_a_paced_one_a_bounded_speed(client, capsys):
    # GIVEN an answer sent as fast as possible (the simulated provider writes it in one piece: one read), and one
    # paced at 20 tokens a second
    one_read = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5,fault_at=19")
    paced = new_session(client, "sim:first_token_ms=0,tokens_per_second=20,tokens=10,fault_at=19")
    capsys.readouterr()
    # WHEN both stream
    quick, streamed = stream_chat(client, one_read), stream_chat(client, paced)
    # THEN the one-read answer has no speed anywhere: not in done, not stored, not in the metrics
    assert quick.one("done")["tokensPerSecond"] is None
    assert "tokensPerSecond" not in messages_of(client, one_read)[-1]["metadata"]
    blobs = {blob["model"]: blob for blob in emf_lines(capsys.readouterr().out)}
    assert "TokensPerSecond" not in blobs["sim:first_token_ms=0,tokens_per_second=0,tokens=5,fault_at=19"]
    # AND the paced one has a speed, which by its definition cannot exceed its tokens over the minimum span
    speed = streamed.one("done")["tokensPerSecond"]
    assert 0 < speed <= 10 / MIN_RATE_SPAN_SECONDS
    assert blobs["sim:first_token_ms=0,tokens_per_second=20,tokens=10,fault_at=19"]["TokensPerSecond"] == [speed]


@pytest.mark.parametrize(("error", "cut_off", "status"), [
    (None, False, COMPLETE),
    (None, True, INTERRUPTED),
    (PROVIDER_INCOMPLETE, False, INCOMPLETE),
    (DEADLINE, False, INTERRUPTED),
    (CANCELLED, False, INTERRUPTED),
    (PROVIDER_RATE_LIMITED, False, ERROR),
])
def test_the_stored_status_follows_how_the_turn_ended(tally, error, cut_off, status):
    tally.error = ProviderError(error, "x") if error else None
    tally.cut_off = cut_off
    assert tally.status == tally.reply(PLACEHOLDER).status == tally.report().status == status


def test_the_reply_keeps_the_placeholders_identity_and_only_the_metadata_that_is_known(tally):
    tally.token("Hi")
    tally.note(Finish("stop"))
    reply = tally.reply(PLACEHOLDER)
    assert (reply.message_id, reply.role, reply.created_at) == (PLACEHOLDER.message_id, "ai", PLACEHOLDER.created_at)
    assert reply.metadata == {"provider": "openai", "model": "gpt-test", "finishReason": "stop", "ttftMs": 0.0}


def test_the_report_carries_the_error_code_or_else_the_stores_failure(tally, clock):
    tally.request_sent()
    clock.now += 1.5
    tally.store_failure = "store_unavailable"
    report = tally.report()
    assert (report.error_code, report.duration_ms, report.relay_overhead_ms) == ("store_unavailable", 1500.0, 0.0)
    tally.error = ProviderError(PROVIDER_INCOMPLETE, "cut")
    assert tally.report().error_code == PROVIDER_INCOMPLETE


def test_the_exchange_shows_in_milliseconds_once_there_is_one(tally):
    assert (tally.connect_ms, tally.first_byte_ms) == (None, None)
    tally.exchange = Exchange()  # a transport that tells neither
    assert (tally.connect_ms, tally.first_byte_ms) == (None, None)
    tally.exchange = Exchange(connect_seconds=0.0125, first_byte_seconds=0.25)
    assert (tally.connect_ms, tally.first_byte_ms) == (12.5, 250.0)


def test_a_reasoning_delta_is_the_provider_alive_but_not_the_first_token(tally, clock):
    clock.now += 0.5
    tally.reasoning("Let me think")
    assert (tally.first_delta_at, tally.first_token_at) == (100.5, None)
    assert (tally.time_to_first_reasoning_ms, tally.ttft_ms) == (500.0, None)
    clock.now += 1.5
    assert tally.token("Hi") is True  # TimeToFirstToken stays the answer's first text
    assert (tally.first_delta_at, tally.ttft_ms) == (100.5, 2000.0)
    reply = tally.reply(PLACEHOLDER)
    assert (reply.content, reply.reasoning, reply.metadata["timeToFirstReasoningMs"]) == ("Hi", "Let me think", 500.0)


def reason_then_answer(tally, clock, usage):
    """Eleven reasoning deltas a second apart, then the answer's 5 deltas over 2 seconds: 13 seconds in all, each
    delta a network read of its own."""
    for _ in range(11):
        tally.reasoning("r")
        tally.read_ended()
        clock.now += 1.0
    for _ in range(5):
        tally.token("t")
        tally.read_ended()
        clock.now += 0.5
    clock.now -= 0.5
    tally.note(usage)


def test_speed_leaves_out_the_reasoning_the_provider_counts_apart(tally, clock):
    # 100 output tokens of which 80 were reasoning: the answer's 20, less the first read's fifth, over its 2 seconds
    reason_then_answer(tally, clock, Usage(input_tokens=1, output_tokens=100, reasoning_tokens=80))
    assert (tally.tokens_per_second, tally.reasoning_tokens) == (8.0, 80)


@pytest.mark.parametrize("reasoning_tokens", [100, 130])
def test_no_speed_when_the_reasoning_count_leaves_the_answer_no_tokens(tally, clock, reasoning_tokens):
    # a provider whose reasoning count reaches its output count: the answer's share would be 0 or negative
    reason_then_answer(tally, clock, Usage(input_tokens=1, output_tokens=100, reasoning_tokens=reasoning_tokens))
    assert (tally.tokens_per_second, tally.reasoning_tokens) == (None, reasoning_tokens)
    assert tally.reply(PLACEHOLDER).metadata.get("tokensPerSecond") is None


def test_speed_spans_the_reasoning_too_when_the_provider_folds_its_count_into_the_output(tally, clock):
    # Anthropic and Bedrock: 130 output tokens, reasoning included with no count of its own, less the first read's
    # fifth of the answer, over all 13 seconds
    reason_then_answer(tally, clock, Usage(input_tokens=1, output_tokens=130))
    assert (tally.tokens_per_second, tally.reasoning_tokens) == (8.0, None)


def test_speed_without_usage_counts_the_answers_deltas_over_the_answers_time(tally, clock):
    for _ in range(3):
        read_reasoning(tally, "r")
        clock.now += 1.0
    read(tally, clock, "a")
    read(tally, clock, "b", after=1.0)
    assert tally.tokens_per_second == 1.0  # the text delta after the first read, over their one second


def test_a_zero_reasoning_count_is_no_count(tally):
    tally.note(Usage(input_tokens=1, output_tokens=5, reasoning_tokens=0))  # OpenAI's non-reasoning models
    assert tally.reasoning_tokens is None
    assert tally.reply(PLACEHOLDER).metadata["usage"] == {"inputTokens": 1, "outputTokens": 5}


def test_signatures_are_kept_apart_within_their_budget_and_redacted_blocks_and_an_ignored_option_are_noted(tally):
    tally.note(ReasoningSignature("s" * 10_000))
    tally.note(ReasoningSignature("t" * 10_000))  # over MAX_SIGNATURE_CHARS in all: not kept
    tally.note(ReasoningRedacted())
    tally.note(ReasoningRedacted())
    tally.reasoning_ignored = "m takes no reasoning option"
    reply = tally.reply(PLACEHOLDER)
    assert reply.reasoning_signatures == ("s" * 10_000,)
    assert "s" * 10 not in str(reply.to_json())
    assert [note["code"] for note in reply.metadata["notes"]] == ["reasoning_ignored", "reasoning_redacted"]
    assert reply.metadata["notes"][0]["message"] == "m takes no reasoning option"
    assert reply.metadata["notes"][1]["message"].startswith("2 reasoning block(s)")
