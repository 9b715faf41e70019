"""The dashboard and the alarms read only metrics the code emits, in its namespace, with its dimension sets.

cfn-lint does not look inside a dashboard's JSON body, and CloudWatch shows an empty graph for a metric that does
not exist; these tests are what catches a renamed metric or a dropped dimension set.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from relay.telemetry import TurnReport, publish_budget_refusal, publish_turn_metrics
from tests.cloudformation import load_template
from tests.helpers import emf_lines

Metric = tuple[str, str, frozenset[str]]  # namespace, name, dimension names
LAMBDA_METRICS = {"Duration", "Throttles", "ConcurrentExecutions", "Errors", "Invocations"}
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\}\s+MetricName=\"(?P<name>\w+)\"")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def environment(template) -> dict[str, str]:
    return template["Resources"]["ChatFunction"]["Properties"]["Environment"]["Variables"]


@pytest.fixture()
def emitted(environment, monkeypatch, capsys) -> set[Metric]:
    """Every (namespace, metric, dimension set) the code emits, read from the EMF of a full and a failed turn and of
    a turn refused for its budget."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", environment["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", environment["POWERTOOLS_METRICS_NAMESPACE"])
    capsys.readouterr()
    publish_turn_metrics(TurnReport(provider="openai", model="m", status="complete", duration_ms=9.0, ttft_ms=1.0,
                                    tokens_per_second=5.0, input_tokens=1, output_tokens=2, relay_overhead_ms=0.5,
                                    cold_start=True, reasoning_tokens=1, time_to_first_reasoning_ms=0.5))
    publish_turn_metrics(TurnReport(provider="openai", model="m", status="error", duration_ms=9.0,
                                    error_code="provider_error"))
    publish_budget_refusal("month")
    metrics: set[Metric] = set()
    for blob in emf_lines(capsys.readouterr().out):
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    metrics.add((directive["Namespace"], metric["Name"], frozenset(dimensions)))
    return metrics


def dashboard(template) -> dict[str, Any]:
    body = template["Resources"]["RelayDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for placeholder, value in {"AWS::Region": "us-east-1", "ChatFunction": "chat-fn", "AWS::StackName": "s"}.items():
        body = body.replace("${" + placeholder + "}", value)
    return json.loads(body)


def expand_rows(rows: list[list[Any]]) -> list[tuple[list[str], dict[str, Any]]]:
    """CloudWatch's metric-row shorthand made explicit: "..." repeats the row above, "." one of its items."""
    expanded: list[tuple[list[str], dict[str, Any]]] = []
    previous: list[str] = []
    for row in rows:
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        items = [item for item in row if not isinstance(item, dict)]
        if items[:1] == ["..."]:
            items = previous + items[1:]
        items = [previous[i] if item == "." else item for i, item in enumerate(items)]
        if items:
            previous = items
        expanded.append((items, options))
    return expanded


def referenced_by_dashboard(template, environment) -> set[Metric]:
    metrics: set[Metric] = set()
    for widget in dashboard(template)["widgets"]:
        for items, options in expand_rows(widget["properties"]["metrics"]):
            if items:
                namespace, name, *pairs = items
                dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
                if namespace == "ChatRelay":
                    assert dimensions.get("service") == environment["POWERTOOLS_SERVICE_NAME"], items
                metrics.add((namespace, name, frozenset(dimensions)))
            elif match := SEARCH.search(options.get("expression", "")):
                namespace, *dimensions = match["schema"].split(",")
                metrics.add((namespace, match["name"], frozenset(dimensions)))
    return metrics


def referenced_by_alarms(template) -> set[Metric]:
    metrics: set[Metric] = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = [query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query]
        for metric in stats or [properties]:
            dimensions = frozenset(d["Name"] for d in metric.get("Dimensions", []))
            metrics.add((metric["Namespace"], metric["MetricName"], dimensions))
    return metrics


def test_every_dashboard_metric_is_emitted_by_the_code(template, environment, emitted):
    referenced = referenced_by_dashboard(template, environment)
    ours = {metric for metric in referenced if metric[0] != "AWS/Lambda"}
    assert ours, "the dashboard shows none of the relay's metrics"
    assert ours <= emitted, ours - emitted


def test_function_widgets_read_lambdas_own_metrics_for_this_function(template, environment):
    lambda_metrics = {m for m in referenced_by_dashboard(template, environment) if m[0] == "AWS/Lambda"}
    assert {name for _, name, _ in lambda_metrics} <= LAMBDA_METRICS
    assert all(dimensions == {"FunctionName"} for _, _, dimensions in lambda_metrics)
    assert '"FunctionName", "${ChatFunction}"' in str(template["Resources"]["RelayDashboard"])


def test_every_alarm_reads_an_emitted_metric(template, emitted):
    referenced = referenced_by_alarms(template)
    assert {name for _, name, _ in referenced} >= {"TimeToFirstToken", "StreamErrors", "Requests"}
    assert referenced <= emitted, referenced - emitted


def test_error_rate_math_references_queries_that_exist(template):
    queries = template["Resources"]["ErrorRateAlarm"]["Properties"]["Metrics"]
    ids = {query["Id"] for query in queries}
    [expression] = [query["Expression"] for query in queries if "Expression" in query]
    assert set(re.findall(r"[a-z_]\w*", expression)) <= ids


def test_dashboard_shows_what_the_issue_asks_for(template, environment):
    referenced = {name for _, name, _ in referenced_by_dashboard(template, environment)}
    assert {"TimeToFirstToken", "TokensPerSecond", "StreamDuration", "StreamErrors", "Requests", "OutputTokens",
            "ColdStart", "Duration", "Throttles", "ConcurrentExecutions", "TimeToFirstReasoning",
            "ReasoningTokens", "BudgetRefusals"} <= referenced
    stats = str(dashboard(template))
    for percentile in ("p10", "p50", "p90", "p99"):
        assert percentile in stats


def test_readme_catalogue_lists_exactly_the_emitted_metrics(emitted):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    catalogue = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)`", catalogue, flags=re.MULTILINE))
    listed |= set(re.findall(r"^\| `\w+`, `(\w+)`", catalogue, flags=re.MULTILINE))
    assert listed == {name for _, name, _ in emitted}
