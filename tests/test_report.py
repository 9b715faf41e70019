"""devtools.report: the local stand-in for the dashboard, on recorded EMF logs."""

import io
import random
from pathlib import Path

from devtools.report import Report, emf_blobs, main, percentile
from relay.telemetry import TurnReport, publish_turn_metrics

DATA = Path(__file__).resolve().parent / "data"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def recorded_log(capsys) -> str:
    """100 turns with TTFT 1..100 ms in random order, two failures, and ordinary log lines in between."""
    values = list(range(1, 101))
    random.Random(7).shuffle(values)
    for value in values:
        publish_turn_metrics(TurnReport(provider="simulated", model="sim", status="complete", duration_ms=10.0 * value,
                                        ttft_ms=float(value), tokens_per_second=1000.0 / value, output_tokens=5))
        print('{"level":"INFO","message":"stream ended"}')
    for code in ("provider_error", "provider_error", "provider_auth"):
        publish_turn_metrics(TurnReport(provider="openai", model="gpt", status="error", duration_ms=5.0,
                                        error_code=code))
    return capsys.readouterr().out


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0


def test_report_on_a_recorded_log_gives_the_known_percentiles_and_error_counts(capsys):
    report = Report.from_blobs(emf_blobs(recorded_log(capsys)))
    group = report.groups[("simulated", "sim")]
    assert (group.turns, group.completed) == (100, 100)
    ttft = group.values["TimeToFirstToken"]
    assert [percentile(ttft, p) for p in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile(group.values["StreamDuration"], 90) == 900.0
    assert report.groups[("openai", "gpt")].completed == 0
    assert report.errors == {"provider_error": 2, "provider_auth": 1}

    out = io.StringIO()
    report.write_table(out)
    assert "| simulated | sim | 100 | 100 | 50.0 | 90.0 | 99.0 |" in out.getvalue()
    assert "provider_auth 1, provider_error 2" in out.getvalue()


def test_emf_is_found_behind_log_prefixes_and_inside_a_cloudwatch_export():
    blob = '{"_aws":{"CloudWatchMetrics":[]},"provider":"p","model":"m","Requests":[1.0]}'
    prefixed = f"2026-11-25T20:00:00.000Z 1234 INFO {blob}"
    assert [blob["provider"] for blob in emf_blobs(prefixed)] == ["p"]
    report = Report.from_blobs(emf_blobs((DATA / "cloudwatch-export.json").read_text()))
    group = report.groups[("openai", "gpt-4o-mini")]
    assert sorted(group.values["TimeToFirstToken"]) == [290.0, 310.0]
    assert report.errors == {"provider_rate_limited": 1}


def test_command_prints_the_table_and_writes_a_valid_png(tmp_path, capsys):
    log = tmp_path / "dev.log"
    log.write_text(recorded_log(capsys))
    chart = tmp_path / "report.png"
    assert main([str(log), "--chart", str(chart)]) == 0
    assert "| simulated | sim | 100 |" in capsys.readouterr().out
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    from PIL import Image

    with Image.open(chart) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 300


def test_command_without_a_log_says_how_to_make_one(tmp_path, capsys):
    assert main([str(tmp_path / "missing.log")]) == 2
    assert "make dev" in capsys.readouterr().err
