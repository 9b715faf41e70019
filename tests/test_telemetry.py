import pytest

from relay.telemetry import TurnReport, publish_turn_metrics
from tests.helpers import emf_lines


@pytest.fixture(autouse=True)
def powertools_environment(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "chat-relay")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ChatRelay")


def test_completed_turn_emits_one_emf_blob_with_every_metric(capsys):
    # GIVEN a completed turn
    report = TurnReport(provider="openai", model="gpt-4o-mini", status="complete", duration_ms=1500.0,
                        ttft_ms=250.5, tokens_per_second=42.0, input_tokens=10, output_tokens=50)
    # WHEN its metrics are published
    publish_turn_metrics(report)
    # THEN one EMF line carries the values, in the namespace, with three dimension sets
    [blob] = emf_lines(capsys.readouterr().out)
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "ChatRelay"
    assert directive["Dimensions"] == [["service"], ["service", "provider"], ["service", "provider", "model"]]
    assert (blob["service"], blob["provider"], blob["model"]) == ("chat-relay", "openai", "gpt-4o-mini")
    units = {m["Name"]: m for m in directive["Metrics"]}
    assert units["TimeToFirstToken"] == {"Name": "TimeToFirstToken", "Unit": "Milliseconds", "StorageResolution": 1}
    assert units["TokensPerSecond"]["Unit"] == "Count/Second"
    assert units["StreamDuration"]["Unit"] == "Milliseconds"
    assert blob["TimeToFirstToken"] == [250.5]
    assert blob["TokensPerSecond"] == [42.0]
    assert blob["StreamDuration"] == [1500.0]
    assert blob["InputTokens"] == [10.0]
    assert blob["OutputTokens"] == [50.0]
    assert blob["Requests"] == [1.0]
    assert blob["StreamCompleted"] == [1.0]
    assert blob["StreamErrors"] == [0.0]


def test_failed_turn_counts_an_error_by_code_and_omits_what_it_never_had(capsys):
    # GIVEN a turn that failed before its first token
    report = TurnReport(provider="openai", model="m", status="error", duration_ms=80.0, error_code="provider_auth")
    # WHEN its metrics are published
    publish_turn_metrics(report)
    # THEN the turn's line counts an error, and a second line counts it by error code
    turn, by_code = emf_lines(capsys.readouterr().out)
    assert turn["StreamCompleted"] == [0.0]
    assert turn["StreamErrors"] == [1.0]
    assert "TimeToFirstToken" not in turn and "TokensPerSecond" not in turn
    directive = by_code["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["errorCode", "service"], ["service", "provider", "errorCode"]]
    assert directive["Metrics"] == [{"Name": "StreamErrors", "Unit": "Count"}]
    assert (by_code["errorCode"], by_code["provider"], by_code["StreamErrors"]) == ("provider_auth", "openai", [1.0])


def test_completed_turn_emits_no_error_code_line(capsys):
    publish_turn_metrics(TurnReport(provider="openai", model="m", status="complete", duration_ms=5.0))
    assert len(emf_lines(capsys.readouterr().out)) == 1


def test_overhead_retries_fallbacks_and_cold_start_are_reported(capsys):
    report = TurnReport(provider="openai", model="m", status="complete", duration_ms=5.0, relay_overhead_ms=1.5,
                        retries=2, fallbacks=1, cold_start=True)
    publish_turn_metrics(report)
    [blob] = emf_lines(capsys.readouterr().out)
    units = {m["Name"]: m for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["RelayOverhead"] == {"Name": "RelayOverhead", "Unit": "Milliseconds", "StorageResolution": 1}
    assert (blob["RelayOverhead"], blob["Retries"], blob["Fallbacks"], blob["ColdStart"]) == ([1.5], [2.0], [1.0],
                                                                                             [1.0])


def test_only_the_first_turn_of_a_process_is_a_cold_start(monkeypatch):
    from relay import telemetry

    monkeypatch.setattr(telemetry, "_cold_start", True)
    assert [telemetry.take_cold_start() for _ in range(3)] == [True, False, False]


def test_disconnected_turn_counts_a_disconnect_not_an_error(capsys):
    report = TurnReport(provider="openai", model="m", status="interrupted", duration_ms=80.0,
                        client_disconnected=True)
    publish_turn_metrics(report)
    [blob] = emf_lines(capsys.readouterr().out)
    assert blob["ClientDisconnects"] == [1.0]
    assert blob["StreamErrors"] == [0.0]


def test_reasoning_adds_its_first_delta_time_and_its_token_count_and_a_turn_without_has_neither(capsys):
    publish_turn_metrics(TurnReport(provider="gemini", model="m", status="complete", duration_ms=9.0, ttft_ms=800.0,
                                    time_to_first_reasoning_ms=120.0, reasoning_tokens=300, output_tokens=340))
    publish_turn_metrics(TurnReport(provider="gemini", model="m", status="complete", duration_ms=9.0, ttft_ms=80.0))
    reasoned, plain = emf_lines(capsys.readouterr().out)
    units = {m["Name"]: m for m in reasoned["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["TimeToFirstReasoning"] == {"Name": "TimeToFirstReasoning", "Unit": "Milliseconds",
                                             "StorageResolution": 1}
    assert units["ReasoningTokens"]["Unit"] == "Count"
    assert (reasoned["TimeToFirstReasoning"], reasoned["ReasoningTokens"]) == ([120.0], [300.0])
    assert "TimeToFirstReasoning" not in plain and "ReasoningTokens" not in plain
