"""The turn's tally on its own, with a clock the test moves: what it stores and what it reports."""

import pytest

from relay.errors import CANCELLED, DEADLINE, PROVIDER_INCOMPLETE, PROVIDER_RATE_LIMITED, ProviderError
from relay.events import Finish, ReasoningRedacted, ReasoningSignature, Usage
from relay.providers.base import Exchange
from relay.records import COMPLETE, ERROR, INCOMPLETE, INTERRUPTED, PENDING, StoredMessage
from relay.tally import Tally


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


def test_speed_is_tokens_between_the_first_and_the_last_and_prefers_the_providers_count(tally, clock):
    tally.token("a")
    assert tally.tokens_per_second is None  # one instant: no rate to speak of
    clock.now += 2.0
    tally.token("b")
    assert tally.tokens_per_second == 1.0  # two deltas over two seconds, counted here
    tally.note(Usage(input_tokens=7, output_tokens=10))
    assert (tally.output_tokens, tally.tokens_per_second) == (10, 5.0)


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
    """Eleven reasoning deltas a second apart, then the answer's 5 deltas over 2 seconds: 13 seconds in all."""
    for _ in range(11):
        tally.reasoning("r")
        clock.now += 1.0
    for _ in range(5):
        tally.token("t")
        clock.now += 0.5
    clock.now -= 0.5
    tally.note(usage)


def test_speed_leaves_out_the_reasoning_the_provider_counts_apart(tally, clock):
    # 100 output tokens of which 80 were reasoning: the answer's 20 over its own 2 seconds
    reason_then_answer(tally, clock, Usage(input_tokens=1, output_tokens=100, reasoning_tokens=80))
    assert (tally.tokens_per_second, tally.reasoning_tokens) == (10.0, 80)


def test_speed_spans_the_reasoning_too_when_the_provider_folds_its_count_into_the_output(tally, clock):
    # Anthropic and Bedrock: 130 output tokens, reasoning included with no count of its own, over all 13 seconds
    reason_then_answer(tally, clock, Usage(input_tokens=1, output_tokens=130))
    assert (tally.tokens_per_second, tally.reasoning_tokens) == (10.0, None)


def test_speed_without_usage_counts_the_answers_deltas_over_the_answers_time(tally, clock):
    for _ in range(3):
        tally.reasoning("r")
        clock.now += 1.0
    tally.token("a")
    clock.now += 1.0
    tally.token("b")
    assert tally.tokens_per_second == 2.0  # two text deltas over their one second: the reasoning is no answer


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
