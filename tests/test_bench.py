"""`make bench-smoke` as CI runs it: its results in a file of their own, headed as a smoke run. (It asserts no
timing: its sizes are too small to judge any.)"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools.bench import OUT, SMOKE_OUT

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)  # the whole benchmark at tiny sizes: about 30 s alone, more beside other work
def test_make_bench_smoke_writes_its_own_results_headed_as_a_smoke_run_and_leaves_make_benchs_alone():
    # GIVEN whatever `make bench` last wrote (nothing, on a fresh checkout)
    full = OUT / "results.md"
    before = full.read_bytes() if full.exists() else None
    # WHEN the smoke run runs, in an environment of its own (not this test session's local stack)
    environment = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    done = subprocess.run(["make", "--no-print-directory", "bench-smoke"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=590, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # THEN its results say first that they are a smoke run's, too small to judge a target by
    results = (SMOKE_OUT / "results.md").read_text()
    assert results.startswith("**Smoke run: its sizes are too small to judge any target")
    assert "| Measurement | Result | Reference |" in results
    assert "too small to judge" in json.loads((SMOKE_OUT / "results.json").read_text())["smoke"]
    assert "too small to judge" in done.stdout and str(SMOKE_OUT / "results.md") in done.stdout
    # AND a real run's results are where they were, untouched
    assert SMOKE_OUT != OUT and (full.read_bytes() if full.exists() else None) == before
