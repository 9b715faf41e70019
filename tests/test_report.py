"""devtools.report: the local stand-in for the dashboard, on recorded EMF logs."""

import io
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

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


A_DOZEN_MODELS = [
    ("simulated", "sim"), ("simulated", "sim:echo=1"),
    ("simulated", "sim:first_token_ms=2000,tokens_per_second=5,tokens=80"),
    ("simulated", "sim:fault=error_after,fault_at=12"), ("simulated", "sim:fault=http_429"), ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"), ("anthropic", "claude-sonnet-4-5-20250929"), ("gemini", "gemini-2.5-flash"),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"), ("openai-responses", "o4-mini"),
    ("simulated", "sim:first_token_ms=0,tokens_per_second=200,tokens=300,reasoning=20"),
]


def a_dozen_models_log(capsys) -> str:
    for index, (provider, model) in enumerate(A_DOZEN_MODELS):
        for turn in range(3):
            publish_turn_metrics(TurnReport(provider=provider, model=model, status="complete",
                                            duration_ms=900.0 + turn, ttft_ms=100.0 * (index + 1),
                                            tokens_per_second=40.0 + turn, output_tokens=9))
    for code in ("provider_rate_limited", "provider_rate_limited", "provider_timeout"):
        publish_turn_metrics(TurnReport(provider="openai", model="gpt-4.1", status="error", duration_ms=5.0,
                                        error_code=code))
    return capsys.readouterr().out


def texts_on(figure) -> list[tuple[str, Any]]:
    """Every piece of text drawn on the figure, with the box it takes. (A locator also labels a tick or two beyond
    an axis's limits, which are not drawn.)"""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()

    def drawn(labels: list[Any], limits: tuple[float, float], coordinate: int) -> list[Any]:
        low, high = sorted(limits)
        return [label for label in labels if low <= label.get_position()[coordinate] <= high]

    texts = [text for axis in figure.axes for text in [
        axis.title, *axis.texts, *drawn(axis.get_xticklabels(), axis.get_xlim(), 0),
        *drawn(axis.get_yticklabels(), axis.get_ylim(), 1)]]
    texts += [text for legend in figure.legends for text in legend.get_texts()]
    return [(text.get_text(), text.get_window_extent(renderer)) for text in texts
            if text.get_visible() and text.get_text()]


def test_make_reports_chart_of_a_dozen_models_has_no_label_over_another_and_an_errors_panel(tmp_path, capsys):
    # GIVEN the log of a dozen models, some with long scenario names, and errors of two codes
    log = tmp_path / "dev.log"
    log.write_text(a_dozen_models_log(capsys))
    # WHEN make report runs on it
    chart = tmp_path / "report.png"
    done = subprocess.run([sys.executable, "-m", "devtools.report", str(log), "--chart", str(chart)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert len([line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]) == 1 + 12
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    # THEN every model is named once, at the left, and no piece of text lies over another or off the picture
    figure = Report.from_blobs(emf_blobs(log.read_text())).chart()
    texts = texts_on(figure)
    named = [text for text, _ in texts if " ·\n" in text]
    assert len(named) == 12 and all(len(line) <= 30 for text in named for line in text.splitlines())
    whole = figure.bbox
    for index, (text, box) in enumerate(texts):
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, text
        for other, other_box in texts[index + 1:]:
            assert not box.overlaps(other_box), (text, other)
    # AND the errors have a panel of their own, the most frequent code first
    errors = figure.axes[-1]
    assert errors.get_title() == "Errors by code"
    assert [label.get_text() for label in errors.get_yticklabels()] == ["provider_rate_limited", "provider_timeout"]
    assert [bar.get_width() for bar in errors.patches] == [2, 1]


def test_with_no_errors_the_errors_panel_says_so(capsys):
    publish_turn_metrics(TurnReport(provider="simulated", model="sim", status="complete", duration_ms=10.0,
                                    ttft_ms=5.0, tokens_per_second=50.0, output_tokens=5))
    figure = Report.from_blobs(emf_blobs(capsys.readouterr().out)).chart()
    assert [text for text, _ in texts_on(figure) if text in ("Errors by code", "no errors")] == [
        "Errors by code", "no errors"]
