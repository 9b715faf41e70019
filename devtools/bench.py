"""The benchmark: what the relay adds, measured side by side with its reference in one run, on loopback.

    python -m devtools.bench              # full sizes (make bench)
    python -m devtools.bench --smoke      # tiny sizes: CI runs it so it does not rot; it never asserts a timing

The relay runs as Lambda runs it: its own process, uvicorn serving functions/chat/app.py. DynamoDB (moto) and the
simulated provider run in a process of their own, so their work does not take the interpreter lock from the
benchmark's client while it times the relay. Results go to .local/bench/results.{md,json,png}; a smoke run's to
.local/bench/smoke/, headed as such, so that it never overwrites a real run's numbers with ones too small to judge.

1. Relay-added TTFT: time to the first token through the relay minus straight from the simulated provider.
2. Throughput: a 20,000-token answer as fast as the provider can send it, through the relay, directly, and through
   LiteLLM (installed into its own virtual environment; skipped with a note when it cannot be).
3. Cold start: process start to /healthz answering, and to the first token of a first request, tracing off and on;
   and what the request validators cost on that path, pydantic-core's (the relay's) beside pydantic's.
4. Peak RSS of the relay process (VmHWM) while streaming 1 and 50 answers.
5. DynamoDB requests per turn for a 10-second answer, counted at the client.
6. Relay-added TTFT p99 with 100 streams at once.
7. Real-world latencies: cold starts with DynamoDB and the provider behind TLS and a network's round trips
   (devtools/bench_network.py), the relay beside the bare pass-through, its provider connection opened after the
   store read and ahead of it, and the parts of its first request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.local_run import DEMO_SESSION_ID, LocalRun
from devtools.report import percentile
from devtools.simulated_provider import Scenario

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".local" / "bench"  # the results, and what the runs build and log
SMOKE_OUT = OUT / "smoke"  # a smoke run's results: their own, beside a real run's
SMOKE_HEADING = ("Smoke run: its sizes are too small to judge any target (a check that the benchmark still runs). "
                 "`make bench` measures.")


@dataclass
class Sizes:
    ttft_requests: int = 200
    throughput_tokens: int = 20_000
    throughput_rounds: int = 5
    cold_starts: int = 9  # medians of 5 moved by ±50 ms from run to run on a noisy 2-core machine
    concurrent: int = 100
    rss_streams: int = 50
    answer_seconds: float = 10.0
    litellm: bool = True


SMOKE = Sizes(ttft_requests=10, throughput_tokens=500, throughput_rounds=1, cold_starts=1, concurrent=5,
              rss_streams=3,
              answer_seconds=1.0, litellm=False)


@dataclass
class Results:
    machine: str
    sizes: dict[str, Any]
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # measurement, value, reference
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: str, reference: str = "") -> None:
        self.rows.append((name, value, reference))
        print(f"  {name}: {value}" + (f"   ({reference})" if reference else ""), flush=True)


class Backends:
    """DynamoDB (moto, table and demo session ready) and the simulated provider, in a process of their own; their
    environment (endpoints, table names) is applied to this process, and so to the relay processes it starts."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "devtools.bench", "--serve-backends"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        environment = json.loads(self.process.stdout.readline())
        self.provider_url = environment.pop("BENCH_PROVIDER_URL")
        os.environ.update(environment)
        self.dynamodb_url = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # serve_backends() returns when its stdin ends
        stop_process(self.process)


def stop_process(process: subprocess.Popen[str], timeout: float = 15) -> None:
    """Waits for a backends process to end once told to, and ends it if it does not: the results are written."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve_backends() -> None:
    """The child side of Backends: starts them, prints what it set in the environment, serves until stdin ends."""
    before = dict(os.environ)
    run = LocalRun(port=0, provider_defaults=Scenario(first_token_ms=0, tokens_per_second=0, tokens=5))
    run.start_backends()
    environment = {name: value for name, value in os.environ.items() if before.get(name) != value}
    print(json.dumps({**environment, "BENCH_PROVIDER_URL": run.provider_server.url}), flush=True)
    sys.stdin.read()
    run.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RelayProcess:
    """functions/chat/app.py under uvicorn in its own process, as the Lambda Web Adapter starts it (or, with
    ``app="devtools.passthrough:app"``, the bare pass-through the relay is compared with)."""

    def __init__(self, layer: Path = ROOT / "layers/relay", app: str = "app:app", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No CORS middleware, as on Lambda, where the function URL answers CORS itself.
        environment = {**os.environ, "PYTHONPATH": f"{layer}{os.pathsep}{ROOT}", "CORS_ALLOW_ORIGINS": "", **env}
        OUT.mkdir(parents=True, exist_ok=True)
        self.log = OUT / f"relay-{self.port}.log"
        self._log_file = self.log.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
             app],
            cwd=ROOT / "functions/chat", env=environment, stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def turn_logs(self) -> list[dict[str, Any]]:
        """The "stream ended" log lines the relay wrote, oldest first."""
        self._log_file.flush()
        return [json.loads(line) for line in self.log.read_text().splitlines()
                if line.startswith("{") and '"message":"stream ended"' in line]

    def wait_ready(self, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        with httpx.Client() as client:
            while time.perf_counter() < deadline:
                try:
                    if client.get(self.url + "/healthz").status_code == 200:
                        return (time.perf_counter() - self.started) * 1000
                except httpx.TransportError:
                    time.sleep(0.001)
        raise RuntimeError("the relay did not become ready")

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log_file.close()


async def relay_ttft(client: httpx.AsyncClient, url: str, session_id: str) -> tuple[float, int]:
    """Milliseconds to the first token event, and the number of tokens, reading the whole answer."""
    started = time.perf_counter()
    first, tokens = None, 0
    async with client.stream("POST", url + "/chat/stream", json={"chatSessionId": session_id, "content": "hi"}) as r:
        async for line in r.aiter_lines():
            if line == "event: token":
                tokens += 1
                first = first or time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000, tokens


async def direct_ttft(client: httpx.AsyncClient, provider_url: str, model: str) -> tuple[float, int]:
    started = time.perf_counter()
    first, tokens = None, 0
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    async with client.stream("POST", provider_url + "/v1/chat/completions", json=body,
                             headers={"Authorization": "Bearer x"}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                tokens += 1
                first = first or time.perf_counter()
    return ((first or time.perf_counter()) - started) * 1000, tokens


def new_session(url: str, model: str) -> str:
    response = httpx.post(url + "/sessions", json={"provider": "simulated", "model": model}, timeout=30)
    response.raise_for_status()
    return str(response.json()["chatSessionId"])


def stats(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, p):.2f}" for p in (50, 90, 99)) + " ms (p50 / p90 / p99)"


async def measure_ttft(results: Results, relay: RelayProcess, provider_url: str, sizes: Sizes) -> None:
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=5"
    session_id = new_session(relay.url, model)
    passthrough = RelayProcess(app="devtools.passthrough:app",
                               SIMULATED_PROVIDER_URL=os.environ["SIMULATED_PROVIDER_URL"])
    passthrough.wait_ready()
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            for _ in range(3):  # warm every path: connections, caches
                await relay_ttft(client, relay.url, session_id)
                await relay_ttft(client, passthrough.url, session_id)
                await direct_ttft(client, provider_url, model)
            already = len(relay.turn_logs())
            via_relay, via_passthrough, direct = [], [], []
            for _ in range(sizes.ttft_requests):  # interleaved, so drift on a noisy machine hits all alike
                via_relay.append((await relay_ttft(client, relay.url, session_id))[0])
                direct.append((await direct_ttft(client, provider_url, model))[0])
                via_passthrough.append((await relay_ttft(client, passthrough.url, session_id))[0])
    finally:
        passthrough.stop()
    logs = relay.turn_logs()[already:]
    store_reads = [float(log["store_read_ms"]) for log in logs]
    added = [r - d for r, d in zip(via_relay, direct, strict=True)]
    without_read = [a - read for a, read in zip(added, store_reads, strict=True)]
    hop = [p - d for p, d in zip(via_passthrough, direct, strict=True)]
    results.data["ttft"] = {"relay": via_relay, "direct": direct, "store_read": store_reads,
                            "passthrough": via_passthrough}
    results.add("TTFT through the relay", stats(via_relay), f"directly: {stats(direct)}")
    results.add("Relay-added TTFT", stats(added), "the one DynamoDB read included")
    results.add("  of which the DynamoDB read (moto, on this machine)", stats(store_reads))
    results.add("  of which the relay itself (read excluded)", stats(without_read), "target p50 ≤ 1 ms, p99 ≤ 5 ms")
    results.add("  a bare pass-through adds (devtools/passthrough.py)", stats(hop),
                "one more HTTP hop through uvicorn, Starlette and httpx, nothing else: the floor here")
    overheads = [float(log["relay_overhead_ms"]) for log in logs]
    results.add("  request reached the app → provider request handed over", stats(overheads), "RelayOverhead")
    first_bytes = [float(log["provider_first_byte_ms"]) for log in logs]
    results.add("  provider request handed over → its response's first byte", stats(first_bytes),
                "the provider's own time, connecting included")
    connects = [float(log["provider_connect_ms"]) for log in logs]
    results.add("    of which opening a connection to the provider", stats(connects),
                "0 on a pooled connection: every request here but a process's first")
    results.data["ttft"].update(relay_overhead=overheads, provider_first_byte=first_bytes, provider_connect=connects)

    async def one(session: str) -> float:
        return (await relay_ttft(client, relay.url, session))[0]

    sessions = [new_session(relay.url, model) for _ in range(sizes.concurrent)]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=sizes.concurrent)) as client:
        concurrent = await asyncio.gather(*(one(session) for session in sessions))
        direct_concurrent = await asyncio.gather(*(direct_ttft(client, provider_url, model)
                                                   for _ in range(sizes.concurrent)))
    results.add(f"TTFT with {sizes.concurrent} streams at once", stats(list(concurrent)),
                f"directly: {stats([t for t, _ in direct_concurrent])}")


async def measure_throughput(results: Results, sizes: Sizes) -> None:
    """The relay gets a core to itself, as on Lambda, where the provider is another machine: the provider runs in
    this process beside the client (on the other core), not in the backends' process, which would make three
    busy processes on two cores."""
    from devtools.servers import UvicornThread
    from devtools.simulated_provider import SimulatedProvider

    provider = UvicornThread(SimulatedProvider().app).start()
    provider_url = provider.url
    relay = RelayProcess(SIMULATED_PROVIDER_URL=provider_url + "/v1")
    try:
        relay.wait_ready()
        await _throughput(results, relay, provider_url, sizes)
    finally:
        relay.stop()
        provider.stop()


async def _throughput(results: Results, relay: RelayProcess, provider_url: str, sizes: Sizes) -> None:
    model = f"sim:first_token_ms=0,tokens_per_second=0,tokens={sizes.throughput_tokens}"
    session_id = new_session(relay.url, model)
    relay_rates, direct_rates, per_cpu_second = [], [], []
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(sizes.throughput_rounds):  # alternated, and the median taken: one run is at the noise's mercy
            started, cpu_before = time.perf_counter(), relay.cpu_seconds()
            _, relayed = await relay_ttft(client, relay.url, session_id)
            relay_rates.append(relayed / (time.perf_counter() - started))
            per_cpu_second.append(relayed / max(relay.cpu_seconds() - cpu_before, 1e-3))
            started = time.perf_counter()
            _, direct = await direct_ttft(client, provider_url, model)
            direct_rates.append(direct / (time.perf_counter() - started))
            assert relayed == direct == sizes.throughput_tokens, (relayed, direct)
    relay_rate, direct_rate = percentile(relay_rates, 50), percentile(direct_rates, 50)
    litellm = litellm_rate(provider_url, model, sizes) if sizes.litellm else "skipped (--smoke)"
    results.data["throughput"] = {"relay": relay_rate, "direct": direct_rate, "litellm": litellm}
    litellm_text = litellm if isinstance(litellm, str) else f"{litellm:,.0f}/s"
    results.add(f"Throughput, {sizes.throughput_tokens:,} tokens (median of {sizes.throughput_rounds})",
                f"{relay_rate:,.0f} tokens/s through the relay",
                f"directly {direct_rate:,.0f}/s; LiteLLM {litellm_text}; target ≥ 50,000/s and ≥ 10× LiteLLM")
    # Less at the mercy of the other processes than the wall clock: the relay's own CPU time per token.
    results.data["throughput"]["relay_per_cpu_second"] = percentile(per_cpu_second, 50)
    results.add("  tokens per second of the relay's own CPU time", f"{percentile(per_cpu_second, 50):,.0f}",
                "the turn's store writes included")


LITELLM_SCRIPT = """
import asyncio, sys, time, litellm
async def main():
    started, count = time.perf_counter(), 0
    stream = await litellm.acompletion(model="openai/" + sys.argv[2], api_base=sys.argv[1], api_key="x",
                                       messages=[{"role": "user", "content": "hi"}], stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    print(count / (time.perf_counter() - started))
asyncio.run(main())
"""


def litellm_rate(provider_url: str, model: str, sizes: Sizes) -> float | str:
    venv = OUT / "litellm-venv"
    python = venv / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "litellm"], check=True,
                           capture_output=True, timeout=900)
        done = subprocess.run([str(python), "-c", LITELLM_SCRIPT, provider_url + "/v1", model], check=True,
                              capture_output=True, text=True, timeout=600)
        return float(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return f"unavailable ({type(exc).__name__})"


def build_layer(artifacts: Path) -> Path:
    """The layer as `sam build` builds it (layers/relay/Makefile), for this machine's platform; its python/ folder."""
    done = subprocess.run(["make", "--silent", "-C", str(ROOT / "layers/relay"), "build-RelayLayer",
                           f"ARTIFACTS_DIR={artifacts}", "PLATFORM_FLAGS=", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"building the layer failed:\n{done.stdout}{done.stderr}")
    return artifacts / "python"


def built_layers() -> dict[str, Path]:
    """The layer as layers/relay/Makefile builds it for Lambda (bytecode compiled ahead, unused botocore data left
    out), but for this machine's platform; the same without its bytecode, as a plain pip layer would be (Lambda's
    /opt is read-only, so that one gets compiled on every cold start); and the same with botocore's whole endpoint
    table."""
    import shutil

    import botocore

    built, deployed, plain = OUT / "layer-built", OUT / "layer-deployed", OUT / "layer-plain"
    whole_endpoints = OUT / "layer-whole-endpoints"
    shutil.rmtree(built, ignore_errors=True)
    build_layer(built)
    # Through a zip and back, as a deployment takes it: the files' timestamps change on the way.
    shutil.rmtree(deployed, ignore_errors=True)
    archive = shutil.make_archive(str(OUT / "layer"), "zip", built)
    shutil.unpack_archive(archive, deployed)
    shutil.rmtree(plain, ignore_errors=True)
    shutil.copytree(deployed / "python", plain, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(whole_endpoints, ignore_errors=True)
    shutil.copytree(deployed / "python", whole_endpoints)
    shutil.copy(Path(botocore.__file__).parent / "data" / "endpoints.json", whole_endpoints / "botocore" / "data")
    return {"plain": plain, "compiled": deployed / "python", "whole endpoints": whole_endpoints}


@dataclass
class ColdStart:
    """One process's start, in milliseconds from its launch; its CPU time (steadier than the wall clock on a busy
    machine, and what a Lambda function's share of a vCPU divides); and its first request's "stream ended" log line
    (empty for the pass-through, which writes none)."""

    ready_ms: float  # /healthz answered
    first_token_ms: float  # the first request's first token
    ttft_ms: float  # that request's own time to first token, from when it was sent
    cpu_ms: float  # by the end of that request
    cpu_at_ready_ms: float
    turn: dict[str, Any]


async def cold_start(layer: Path, tracing: str, app: str, **env: str) -> ColdStart:
    env = {"TRACING_ENABLED": tracing, "PYTHONDONTWRITEBYTECODE": "1", **env}  # as on read-only /opt
    if tracing == "true":
        env.update(LAMBDA_TASK_ROOT=str(ROOT), AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{free_port()}")
    relay = RelayProcess(layer, app=app, **env)
    try:
        ready = relay.wait_ready()
        cpu_at_ready = relay.cpu_seconds() * 1000
        asked = time.perf_counter()
        async with httpx.AsyncClient(timeout=60) as client:
            ttft, _ = await relay_ttft(client, relay.url, DEMO_SESSION_ID)  # no session to create first
        cpu_ms = relay.cpu_seconds() * 1000
        logs = relay.turn_logs()
        return ColdStart(ready, (asked - relay.started) * 1000 + ttft, ttft, cpu_ms, cpu_at_ready,
                         logs[0] if logs else {})
    finally:
        relay.stop()


async def cold_starts(variants: list[tuple[str, Path, str, str, dict[str, str]]],
                      rounds: int) -> dict[str, list[ColdStart]]:
    """Each variant (label, layer, tracing, app, environment) started ``rounds`` times, round after round, so the
    machine's drift touches each variant alike."""
    starts: dict[str, list[ColdStart]] = {label: [] for label, *_ in variants}
    for _ in range(rounds):
        for label, layer, tracing, app, env in variants:
            starts[label].append(await cold_start(layer, tracing, app, **env))
    return starts


def median(starts: list[ColdStart], field_name: str) -> float:
    return percentile([float(getattr(start, field_name)) for start in starts], 50)


def turn_median(starts: list[ColdStart], name: str) -> float:
    return percentile([float(start.turn[name]) for start in starts], 50)


async def measure_cold_start(results: Results, sizes: Sizes, layers: dict[str, Path]) -> None:
    variants: list[tuple[str, Path, str, str, dict[str, str]]] = [
        ("bytecode compiled ahead, tracing off", layers["compiled"], "false", "app:app", {}),
        ("bytecode compiled ahead, tracing on", layers["compiled"], "true", "app:app", {}),
        ("a plain pip layer (no bytecode: compiled at every start)", layers["plain"], "false", "app:app", {}),
        ("botocore's whole endpoint table (1.2 MB, read at the first client)", layers["whole endpoints"], "false",
         "app:app", {}),
        ("request validators built by pydantic from relay/api.py at start (not taken)", layers["compiled"], "false",
         "devtools.pydantic_validators:app", {}),
        ("reference: bare Starlette + uvicorn + httpx + Powertools (devtools/passthrough.py)", layers["compiled"],
         "false", "devtools.passthrough:app", {}),
    ]
    starts = await cold_starts(variants, sizes.cold_starts)
    for label, _, _, app, _ in variants:
        runs = starts[label]
        results.data[f"cold_start {label}"] = {"ready": [s.ready_ms for s in runs],
                                               "first_token": [s.first_token_ms for s in runs],
                                               "cpu": [s.cpu_ms for s in runs]}
        reference = not app.startswith(("app:", "devtools.pydantic"))
        results.add(f"Cold start to ready, {label}", f"{median(runs, 'ready_ms'):.0f} ms (median)",
                    "" if reference else "target ≤ 250 ms")
        results.add(f"Cold start to first token, {label}",
                    f"{median(runs, 'first_token_ms'):.0f} ms (median); {median(runs, 'cpu_ms'):.0f} ms of CPU",
                    "" if reference else "target ≤ 350 ms")
        if label == variants[0][0]:  # the layer as deployed, tracing off: where its first request's time goes
            results.data["cold_start first request"] = {"store_read": [s.turn["store_read_ms"] for s in runs],
                                                        "provider_connect": [s.turn["provider_connect_ms"]
                                                                             for s in runs]}
            results.add("  its first request's DynamoDB read", f"{turn_median(runs, 'store_read_ms'):.0f} ms "
                        "(median)", "the client and its first connection are made once the app serves")
            results.add("  its first request's connection to the provider",
                        f"{turn_median(runs, 'provider_connect_ms'):.1f} ms (median)",
                        "loopback, plain HTTP: see the real-world latencies below")
    measure_validators(results, sizes, layers["compiled"])
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=ROOT / "functions/chat",
                             env={**os.environ, "PYTHONPATH": str(ROOT / "layers/relay")}, capture_output=True,
                             text=True).stderr
    top = sorted(((int(line.split("|")[1]), line.split("|")[2].strip()) for line in imports.splitlines()
                  if line.startswith("import time:") and line.split("|")[1].strip().isdigit()), reverse=True)
    results.data["top_imports"] = top[:10]
    results.add("Top imports (cumulative)", ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in top[1:6]))


# Imports what the relay imports anyway, then times (wall, CPU) what a way of validating adds: its import, building
# the request validators, and the first validation.
VALIDATORS_SCRIPT = """
import sys, time
import httpx, starlette.applications, starlette.requests, relay.store, relay.turn
assert "pydantic_core" not in sys.modules, "imported before it is measured"
started, cpu = time.perf_counter(), time.process_time()
exec(sys.argv[1])
validate({"chatSessionId": "01HZY00000000000000000DEM0", "content": "hi"})
print((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000)
"""
VALIDATORS = {
    "pydantic-core, from the committed core schemas (the relay: relay/bodies.py)":
        "from relay import bodies; validate = bodies._VALIDATORS['ChatRequest'].validate_python",
    "pydantic, TypeAdapters of relay/api.py's types (not taken)":
        "from pydantic import TypeAdapter; from relay import api; adapters = {name: TypeAdapter(body) for name, body "
        "in api.REQUEST_BODIES.items()}; validate = adapters['ChatRequest'].validate_python",
}


def measure_validators(results: Results, sizes: Sizes, layer: Path) -> None:
    """The request validators' import, build and first validation in a fresh process of the layer as deployed,
    each way side by side, round after round."""
    timings: dict[str, list[tuple[float, float]]] = {label: [] for label in VALIDATORS}
    environment = {**os.environ, "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(sizes.cold_starts):
        for label, code in VALIDATORS.items():
            done = subprocess.run([sys.executable, "-c", VALIDATORS_SCRIPT, code], env=environment,
                                  capture_output=True, text=True, check=True, timeout=60)
            wall, cpu = map(float, done.stdout.split())
            timings[label].append((wall, cpu))
    results.data["validators"] = timings
    for label, measured in timings.items():
        results.add(f"Request validators' import, build and first validation: {label}",
                    f"{percentile([wall for wall, _ in measured], 50):.1f} ms (median); "
                    f"{percentile([cpu for _, cpu in measured], 50):.1f} ms of CPU", "on the cold path")


async def measure_real_world(results: Results, sizes: Sizes, layers: dict[str, Path], backends: Backends) -> None:
    """Cold starts with DynamoDB and the provider behind TLS and a network's round trips (devtools/bench_network.py):
    the bare pass-through, the relay with its provider connection opened only after the store read (as before) and
    opened ahead (now), and variants of the latter; then the first request's parts, and what no overlap would give."""
    from devtools.bench_network import DYNAMODB_RTT_MS, PROVIDER_RTT_MS, NetworkBackends, spare_providers

    network = NetworkBackends(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], backends.provider_url + "/v1", OUT)
    env = network.environment
    before, after = "the relay, provider connection after the read (PROVIDER_PRECONNECT=off)", "the relay"
    variants = [
        ("bare pass-through (devtools/passthrough.py)", layers["compiled"], "false", "devtools.passthrough:app", env),
        (before, layers["compiled"], "false", "app:app", {**env, "PROVIDER_PRECONNECT": "off"}),
        (after, layers["compiled"], "false", "app:app", env),
        ("the relay, DynamoDB client and connection made at import", layers["compiled"], "false",
         "devtools.cold_variants:store_at_import", env),
        (f"the relay, also warming {len(network.spare_origins)} provider origins it never uses", layers["compiled"],
         "false", "app:app", {**env, **spare_providers(network.spare_origins)}),
    ]
    try:
        starts = await cold_starts(variants, sizes.cold_starts)
    finally:
        network.stop()
    condition = f"{DYNAMODB_RTT_MS:.0f} ms RTT to DynamoDB, {PROVIDER_RTT_MS:.0f} ms to the provider, both over TLS"
    for label, *_ in variants:
        runs = starts[label]
        results.data[f"real_world {label}"] = [start.__dict__ for start in runs]
        results.add(f"Real-world latencies, cold start to first token: {label}",
                    f"{median(runs, 'first_token_ms'):.0f} ms (median); ready {median(runs, 'ready_ms'):.0f} ms; "
                    f"first request's TTFT {median(runs, 'ttft_ms'):.0f} ms; "
                    f"{median(runs, 'cpu_ms'):.0f} ms of CPU ({median(runs, 'cpu_at_ready_ms'):.0f} by ready)",
                    condition if label == variants[0][0] else "")
    # The parts of the first request, from the relay's own log line when nothing overlapped.
    no_overlap, overlapping = starts[before], starts[after]
    store_path = turn_median(no_overlap, "relay_overhead_ms")
    connect = turn_median(no_overlap, "provider_connect_ms")
    first_byte = percentile([float(s.turn["provider_first_byte_ms"]) - float(s.turn["provider_connect_ms"])
                             for s in no_overlap], 50)
    def rest_of(runs: list[ColdStart]) -> float:
        return percentile([s.ttft_ms - float(s.turn["relay_overhead_ms"]) - float(s.turn["provider_first_byte_ms"])
                           for s in runs], 50)

    rest = rest_of(no_overlap)
    overlapped = turn_median(overlapping, "relay_overhead_ms")
    results.data["real_world parts"] = {"store_path": store_path, "connect": connect, "first_byte": first_byte,
                                        "rest": rest, "store_path_overlapped": overlapped}
    results.add("  its store path (request reached the app → the provider request handed over)",
                f"{store_path:.0f} ms (median)", f"{overlapped:.0f} ms with the connection opened ahead")
    results.add("  the provider connect (TCP and TLS)", f"{connect:.0f} ms (median)",
                f"{turn_median(overlapping, 'provider_connect_ms'):.0f} ms left of it when opened ahead")
    results.add("  the provider's first byte after connecting", f"{first_byte:.0f} ms (median)",
                "one round trip: the simulated provider answers at once")
    results.add("  the rest (the request's way in; the first byte's way out as a token)", f"{rest:.0f} ms (median)",
                f"{rest_of(overlapping):.0f} ms with the connection opened ahead: the first token also waits for the "
                "user message's write, which the provider's connect used to hide")
    results.add("  sum of the parts (what no overlap gives)", f"{store_path + connect + first_byte + rest:.0f} ms",
                f"the relay's first TTFT without overlap: {median(no_overlap, 'ttft_ms'):.0f} ms")
    expected = max(overlapped, connect) + first_byte + rest
    results.add("  max(store path, provider connect) + first byte + the rest", f"{expected:.0f} ms",
                f"target: the relay's first TTFT within +10 ms of it ({median(overlapping, 'ttft_ms'):.0f} ms)")


async def measure_rss(results: Results, sizes: Sizes) -> None:
    for streams in (1, sizes.rss_streams):
        relay = RelayProcess()
        try:
            relay.wait_ready()
            model = "sim:first_token_ms=0,tokens_per_second=200,tokens=400"
            sessions = [new_session(relay.url, model) for _ in range(streams)]
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=streams)) as client:
                await asyncio.gather(*(relay_ttft(client, relay.url, session) for session in sessions))
            peak = relay.peak_rss_mb()
        finally:
            relay.stop()
        results.data[f"peak_rss_{streams}"] = peak
        results.add(f"Peak RSS, {streams} stream(s)", f"{peak:.0f} MB", "target ≤ 100 MB with one stream"
                    if streams == 1 else "")


def measure_dynamodb_requests(results: Results, backends: Backends, sizes: Sizes) -> None:
    from devtools.local_run import TABLE_NAME
    from devtools.servers import UvicornThread, dynamodb_client
    from relay.app import create_app
    from relay.store import ChatStore

    calls: list[str] = []
    real = dynamodb_client(backends.dynamodb_url)

    class Counting:
        def __getattr__(self, operation: str) -> Any:
            method = getattr(real, operation)

            def counted(**kwargs: Any) -> Any:
                calls.append(operation)
                return method(**kwargs)

            return counted

    tokens = max(2, int(sizes.answer_seconds * 10))
    model = f"sim:first_token_ms=0,tokens_per_second=10,tokens={tokens}"
    server = UvicornThread(create_app(store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=Counting))).start()
    try:
        session_id = new_session(server.url, model)
        calls.clear()
        httpx.post(server.url + "/chat/stream", json={"chatSessionId": session_id, "content": "hi"}, timeout=120)
    finally:
        server.stop()
    reads = sum(1 for call in calls if call in ("query", "get_item"))
    writes = len(calls) - reads
    results.data["dynamodb_calls"] = calls
    results.add(f"DynamoDB requests, one {sizes.answer_seconds:.0f}-second answer",
                f"{reads} read, {writes} write requests ({', '.join(calls)})",
                "target ≤ 3 writes + 1 checkpoint write a second")


def write_outputs(results: Results, out: Path = OUT, *, smoke: bool = False) -> None:
    """results.md, results.json and results.png in ``out``; a smoke run's say so first."""
    out.mkdir(parents=True, exist_ok=True)
    heading = [f"**{SMOKE_HEADING}**", ""] if smoke else []
    lines = [*heading, f"Measured on {results.machine}.", "", "| Measurement | Result | Reference |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {reference} |" for name, value, reference in results.rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({**({"smoke": SMOKE_HEADING} if smoke else {}),
                                                  "machine": results.machine, "sizes": results.sizes,
                                                  "rows": results.rows, "data": results.data}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (ttft, rates) = plt.subplots(1, 2, figsize=(11, 4))
    if smoke:
        figure.suptitle("Smoke run: sizes too small to judge any target", color="#b3261e")
    ttft.boxplot([results.data["ttft"]["relay"], results.data["ttft"]["direct"]], tick_labels=["relay", "direct"])
    ttft.set_title("Time to first token (ms)")
    throughput = results.data["throughput"]
    names = [name for name in ("relay", "direct", "litellm") if isinstance(throughput[name], float)]
    rates.bar(names, [throughput[name] for name in names])
    rates.set_title("Tokens per second")
    figure.tight_layout()
    figure.savefig(out / "results.png", dpi=100)
    plt.close(figure)


async def run_all(sizes: Sizes, backends: Backends) -> Results:
    results = Results(machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                              f"{platform.platform()}", sizes=sizes.__dict__)
    relay = RelayProcess()
    relay.wait_ready()
    try:
        await measure_ttft(results, relay, backends.provider_url, sizes)
    finally:
        relay.stop()
    await measure_throughput(results, sizes)
    layers = built_layers()
    await measure_cold_start(results, sizes, layers)
    await measure_real_world(results, sizes, layers, backends)
    await measure_rss(results, sizes)
    await asyncio.to_thread(measure_dynamodb_requests, results, backends, sizes)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no LiteLLM: a check that it still runs")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--serve-backends", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_backends:
        serve_backends()
        return 0
    sizes = SMOKE if args.smoke else Sizes(litellm=not args.no_litellm)
    os.environ.update(RATE_LIMIT_REQUESTS_PER_MINUTE="0", RATE_LIMIT_CONCURRENT_STREAMS="0")
    backends = Backends()
    try:
        results = asyncio.run(run_all(sizes, backends))
    finally:
        backends.stop()
    out = SMOKE_OUT if args.smoke else OUT
    write_outputs(results, out, smoke=args.smoke)
    print(f"\n{SMOKE_HEADING}" if args.smoke else "")
    print(f"Wrote {out / 'results.md'}, results.json and results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
