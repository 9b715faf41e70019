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
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

DEFAULT_LOG = Path(".local/dev.log")
EMF_MARKER = '{"_aws"'
PERCENTILES = (50, 90, 99)
SERIES = {"TimeToFirstToken": "TTFT ms", "TokensPerSecond": "tokens/s", "StreamDuration": "duration ms"}


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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [f"{provider}\n{model[:32]}" for provider, model in sorted(self.groups)]
        groups = [self.groups[key] for key in sorted(self.groups)]
        figure, axes = plt.subplots(1, len(SERIES), figsize=(6 * len(SERIES), 4.5), squeeze=False)
        width = 0.8 / len(PERCENTILES)
        for axis, (metric, label) in zip(axes[0], SERIES.items(), strict=True):
            for offset, p in enumerate(PERCENTILES):
                heights = [percentile(g.values[metric], p) if g.values[metric] else 0.0 for g in groups]
                axis.bar([i + offset * width for i in range(len(groups))], heights, width, label=f"p{p}")
            axis.set_title(label)
            axis.set_xticks([i + width for i in range(len(groups))], names, fontsize=7)
            axis.legend()
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
        plt.close(figure)


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
