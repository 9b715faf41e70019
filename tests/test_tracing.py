"""Tracing is opt-in: off, the X-Ray SDK is never imported; on, subsegments reach an X-Ray daemon on loopback."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join(["layers/relay", "functions/chat", "."])


def run_python(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": PYTHONPATH, **env}
    if "TRACING_ENABLED" not in env:
        environment.pop("TRACING_ENABLED", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)


def test_with_tracing_off_the_app_never_imports_the_xray_sdk():
    # Powertools' package imports its Tracer class; the X-Ray SDK behind it is the ~240 ms part.
    result = run_python(["-c", "import app, sys; print(sorted(m for m in sys.modules if 'xray' in m))"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_with_tracing_on_a_turn_sends_provider_and_store_subsegments_to_the_daemon():
    # GIVEN an X-Ray daemon stand-in listening on loopback
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(0.2)
    documents: list[dict] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                datagram = daemon.recv(65535).decode()
            except TimeoutError:
                continue
            header, _, body = datagram.partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        # WHEN a chat event runs through the app as in Lambda, with tracing on
        result = run_python(["-m", "devtools.invoke", "events/chat-stream.json"], TRACING_ENABLED="true",
                            LAMBDA_TASK_ROOT=str(ROOT), AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.getsockname()[1]}")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 5
        while not any(d["name"] == "store.write_answer" for d in documents) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        listener.join()
        daemon.close()

    # THEN the provider call and the store calls are subsegments of the invocation's one trace
    by_name = {document["name"]: document for document in documents}
    assert {"provider.stream", "store.load_conversation", "store.write_answer"} <= by_name.keys()
    assert by_name["provider.stream"]["annotations"] == {"provider": "simulated", "model": "sim"}
    operations = {d["aws"]["operation"] for d in documents if d["name"] == "dynamodb"}
    assert {"Query", "TransactWriteItems"} <= operations
    turn = [by_name[name] for name in ("provider.stream", "store.load_conversation", "store.write_answer")]
    assert len({document["trace_id"] for document in turn}) == 1
