"""The local stand-in for the CloudWatch dashboard: percentiles and error counts from EMF log lines, and a chart.

    python -m devtools.report                       # the local run's log, .local/dev.log
    python -m devtools.report exported.json --chart report.png

It reads any text holding EMF JSON objects (the local run's log, Lambda log lines with a timestamp prefix, the
output of `aws logs tail`) and the JSON that `aws logs filter-log-events` writes (``{"events": [{"message"}]}``).
Percentiles are nearest-rank: the smallest value with at least p% of the values at or below it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_LOG = Path(".local/dev.log")
EMF_MARKER = '{"_aws"'
PERCENTILES = (50, 90, 99)
SERIES = {"TimeToFirstToken": "TTFT ms", "TokensPerSecond": "tokens/s", "StreamDuration": "duration ms"}
# The chart's sizes. 8-point labels read at 100 dpi; a model's row is as tall as its label (a line is ~0.15 in at
# 8 points), so a dozen models make a taller chart rather than labels on top of each other.
LABEL_POINTS = 8
LABEL_CHARACTERS = 28  # a line of a model's label: the left panel keeps most of its width for the bars
LABEL_LINES = 3
LINE_INCHES = 0.16
ROW_INCHES = 0.45
ROW_GAP_INCHES = 0.12
FRAME_INCHES = 1.2  # titles and the x axis
MIN_HEIGHT_INCHES = 3.5


def emf_blobs(text: str) -> Iterator[dict[str, Any]]:
    """Every EMF object in the text: one per line, anywhere in the line, or inside a CloudWatch export."""
    stripped = text.lstrip()
    if stripped.startswith("{") and not stripped.startswith(EMF_MARKER):
        try:
            export = json.loads(stripped)
        except ValueError:
            export = None
        if isinstance(export, dict) and isinstance(export.get("events"), list):
            for event in export["events"]:
                yield from emf_blobs(str(event.get("message", "")))
            return
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        start = line.find(EMF_MARKER)
        if start < 0:
            continue
        try:
            blob, _ = decoder.raw_decode(line, start)
        except ValueError:
            continue
        if isinstance(blob, dict):
            yield blob


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Group:
    turns: int = 0
    completed: int = 0
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Report:
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_blobs(cls, blobs: Iterable[dict[str, Any]]) -> Report:
        report = cls()
        for blob in blobs:
            if "errorCode" in blob:
                report.errors[blob["errorCode"]] += int(sum(_values(blob, "StreamErrors")))
            elif "provider" in blob and "model" in blob and "Requests" in blob:
                group = report.groups.setdefault((blob["provider"], blob["model"]), Group())
                group.turns += int(sum(_values(blob, "Requests")))
                group.completed += int(sum(_values(blob, "StreamCompleted")))
                for metric in SERIES:
                    group.values[metric] += _values(blob, metric)
        return report

    def write_table(self, out: TextIO) -> None:
        headers = ["provider", "model", "turns", "completed"]
        headers += [f"{label} p{p}" for label in SERIES.values() for p in PERCENTILES]
        out.write("| " + " | ".join(headers) + " |\n")
        out.write("|" + "---|" * len(headers) + "\n")
        for (provider, model), group in sorted(self.groups.items()):
            cells = [provider, model, str(group.turns), str(group.completed)]
            for metric in SERIES:
                values = group.values[metric]
                cells += [f"{percentile(values, p):.1f}" if values else "-" for p in PERCENTILES]
            out.write("| " + " | ".join(cells) + " |\n")
        out.write("\nErrors by code: ")
        out.write(", ".join(f"{code} {count}" for code, count in sorted(self.errors.items())) or "none")
        out.write("\n")

    def write_chart(self, path: Path) -> None:
        import matplotlib.pyplot as plt

        figure = self.chart()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
        plt.close(figure)

    def chart(self) -> Figure:
        """A panel per series, each model a row of horizontal bars (p50, p90, p99), its name written once at the
        left on as many lines as it needs, so a dozen long scenario names stay apart; then the errors by code."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.layout_engine import ConstrainedLayoutEngine
        from matplotlib.ticker import MaxNLocator

        keys = sorted(self.groups)
        labels = [_label(provider, model) for provider, model in keys]
        lines = max((label.count("\n") + 1 for label in labels), default=1)
        row = max(ROW_INCHES, LINE_INCHES * lines + ROW_GAP_INCHES)  # a row holds its label, and the 3 bars
        height = max(MIN_HEIGHT_INCHES, row * len(keys) + FRAME_INCHES)
        figure, axes = plt.subplots(1, len(SERIES) + 1, figsize=(4.2 * (len(SERIES) + 1) + 2, height),
                                    width_ratios=[1] * len(SERIES) + [0.8],
                                    # room between panels: one's last tick is not the next's first
                                    layout=ConstrainedLayoutEngine(wspace=0.04))
        rows = range(len(keys))
        width = 0.8 / len(PERCENTILES)
        for index, (axis, (metric, label)) in enumerate(zip(axes[:-1], SERIES.items(), strict=True)):
            if index:
                axis.sharey(axes[0])
                axis.tick_params(labelleft=False)
            for offset, p in enumerate(PERCENTILES):
                values = [self.groups[key].values[metric] for key in keys]
                axis.barh([i + (offset - 1) * width for i in rows],
                          [percentile(v, p) if v else 0.0 for v in values], width, label=f"p{p}")
            axis.set_title(label)
            axis.xaxis.set_major_locator(MaxNLocator(nbins=5))
            axis.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(list(rows), labels, fontsize=LABEL_POINTS)
        axes[0].invert_yaxis()  # the first model at the top, as in the table
        handles, names = axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="outside upper center", ncols=len(PERCENTILES), fontsize=LABEL_POINTS)
        self._errors_panel(axes[-1])
        return figure

    def _errors_panel(self, axis: Axes) -> None:
        from matplotlib.ticker import MaxNLocator

        axis.set_title("Errors by code")
        if not self.errors:
            axis.text(0.5, 0.5, "no errors", ha="center", va="center", transform=axis.transAxes)
            axis.set_axis_off()
            return
        codes = sorted(self.errors, key=lambda code: (-self.errors[code], code))
        axis.barh(range(len(codes)), [self.errors[code] for code in codes], 0.5, color="#b3261e")
        axis.set_yticks(range(len(codes)), codes, fontsize=LABEL_POINTS)
        axis.invert_yaxis()
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(axis="x", alpha=0.3)


def _label(provider: str, model: str) -> str:
    """``provider · model`` on lines of at most LABEL_CHARACTERS, broken after the commas of a scenario's
    parameters (``sim:first_token_ms=2000,tokens_per_second=5``), at most LABEL_LINES of them."""
    parts = [part[start:start + LABEL_CHARACTERS] for part in re.findall(r"[^,]+,?", model) or [model]
             for start in range(0, len(part), LABEL_CHARACTERS)]  # a long name without commas: cut in pieces
    lines = [f"{provider} ·"]
    for part in parts:
        if len(lines) > 1 and len(lines[-1]) + len(part) <= LABEL_CHARACTERS:
            lines[-1] += part
        else:
            lines.append(part)
    if len(lines) > LABEL_LINES:
        lines = [*lines[:LABEL_LINES - 1], lines[LABEL_LINES - 1][:LABEL_CHARACTERS - 1] + "…"]
    return "\n".join(lines)


def _values(blob: dict[str, Any], metric: str) -> list[float]:
    value = blob.get(metric)
    if value is None:
        return []
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="*", type=Path, default=[DEFAULT_LOG])
    parser.add_argument("--chart", type=Path, default=Path(".local/report.png"))
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.logs if not path.is_file()]
    if missing:
        print(f"no such log: {', '.join(missing)} (run `make dev` and stream a few answers first)", file=sys.stderr)
        return 2
    report = Report.from_blobs(blob for path in args.logs for blob in emf_blobs(path.read_text(errors="replace")))
    report.write_table(sys.stdout)
    if report.groups:
        report.write_chart(args.chart)
        print(f"\nChart: {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
