"""`make dev` as a newcomer runs it: the real command, in its own process, streaming into the demo session."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from devtools.local_run import DEMO_SESSION_ID

ROOT = Path(__file__).resolve().parent.parent


class DevRun:
    """`make dev` in a process of its own: its URL, what its terminal shows (stdout and stderr, read as they come),
    and its log file."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log
        self.lines: list[str] = []
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)  # it reads to the end of the output, then the pipe can close
        assert self.process.stdout is not None
        self.process.stdout.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def banner(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while not predicate(list(self.lines)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"make dev: no {what}:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        return list(self.lines)


@contextmanager
def dev_run(log: Path, *arguments: str) -> Iterator[DevRun]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/relay", "functions/chat", "."])}
    env.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_run", "--port", "0", "--dynamodb-port", "0", "--provider-port", "0",
         "--first-token-ms", "20", "--tokens-per-second", "50", "--tokens", "15", "--log", str(log), *arguments],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    run = DevRun(process, log)
    try:
        # the banner's last line
        lines = run.wait_for(lambda lines: any(line.strip().startswith("curl -s") for line in lines), "banner")
        run.url = re.search(r"Chat relay running at (http://\S+)", "\n".join(lines)).group(1)
        yield run
    finally:
        run.stop()


@pytest.fixture()
def dev_server(tmp_path):
    with dev_run(tmp_path / "dev.log") as run:
        yield run.url, run.banner, run.log


def test_dev_run_streams_into_the_demo_session_that_its_banner_shows(dev_server):
    url, _, _ = dev_server
    arrivals = []
    with httpx.Client(base_url=url, timeout=30) as client, connect_sse(
        client, "POST", "/chat/stream", json={"chatSessionId": DEMO_SESSION_ID, "content": "Hello!"}
    ) as source:
        for sse in source.iter_sse():
            arrivals.append((time.perf_counter(), sse.event))
    names = [name for _, name in arrivals]
    assert names[0] == "start" and names[-1] == "done" and names.count("token") == 15
    tokens = [at for at, name in arrivals if name == "token"]
    assert tokens[-1] - tokens[0] > 0.15  # 15 tokens at 50/s arrive over ~0.28 s, not in one piece


def test_dev_banner_shows_a_working_curl_command(dev_server):
    url, banner, _ = dev_server
    assert f"curl -N {url}/chat/stream" in banner
    assert DEMO_SESSION_ID in banner


def test_dev_run_writes_its_emf_where_the_report_finds_it(dev_server):
    from devtools.report import Report, emf_blobs

    url, _, log = dev_server
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/chat/stream", json={"chatSessionId": DEMO_SESSION_ID, "content": "Hi"}).raise_for_status()
    report = Report.from_blobs(emf_blobs(log.read_text()))
    assert report.groups[("simulated", "sim")].turns == 1
    assert "Chat relay running at" in log.read_text()


TURN_LINE = re.compile(r"^\d\d:\d\d:\d\d  simulated · (?P<model>\S+)  (?P<status>complete|error \w+)  "
                       r"first token \d+ ms( · \d+ tokens/s)?$")


def turn_lines(lines: list[str]) -> list[re.Match[str]]:
    return [match for line in lines if (match := TURN_LINE.match(line))]


def stream(url: str, model: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        session = client.post("/sessions", json={"provider": "simulated", "model": model}).json()["chatSessionId"]
        client.post("/chat/stream", json={"chatSessionId": session, "content": "Hi"}).raise_for_status()


def test_dev_run_shows_one_short_line_per_turn_and_keeps_the_json_logs_and_emf_in_its_log(tmp_path):
    with dev_run(tmp_path / "dev.log") as run:
        # WHEN two turns end, one complete and one failed
        stream(run.url, "sim:first_token_ms=0,tokens_per_second=50,tokens=20")
        stream(run.url, "sim:first_token_ms=0,fault=error_after,fault_at=2")
        lines = run.wait_for(lambda lines: len(turn_lines(lines)) == 2, "line per turn")
    # THEN the terminal shows one line for each, with its provider, model, status, TTFT and tokens/s
    complete, failed = turn_lines(lines)
    assert (complete["model"], complete["status"]) == ("sim:first_token_ms=0,tokens_per_second=50,tokens=20",
                                                       "complete")
    assert complete.group(0).endswith(" tokens/s")
    assert failed["status"] == "error provider_error"
    # ... and no JSON: that is in the log, the logs and the EMF of both turns
    assert not [line for line in lines if line.startswith("{")]
    logged = [json.loads(line) for line in run.log.read_text().splitlines() if line.startswith("{")]
    assert [record["status"] for record in logged if record.get("message") == "stream ended"] == ["complete", "error"]
    assert len([record for record in logged if "_aws" in record and "Requests" in record]) == 2


def test_dev_run_with_verbose_shows_the_json_logs_and_emf_in_the_terminal_too(tmp_path):
    with dev_run(tmp_path / "dev.log", "--verbose") as run:
        stream(run.url, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
        lines = run.wait_for(lambda lines: len(turn_lines(lines)) == 1 and any('"_aws"' in line for line in lines),
                             "line and EMF")
    assert any('"message":"stream ended"' in line for line in lines)
    assert "stream ended" in run.log.read_text()


def held_port() -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken


@pytest.mark.parametrize("variable", ["PORT", "DYNAMODB_PORT", "SIMULATED_PROVIDER_PORT"])
def test_a_port_in_use_is_one_line_that_names_the_variable_to_change(tmp_path, variable):
    # GIVEN one of the local run's ports taken by another program
    with held_port() as taken:
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/relay", "functions/chat", "."]),
               "PORT": "0", "DYNAMODB_PORT": "0", "SIMULATED_PROVIDER_PORT": "0", variable: str(port)}
        # WHEN `make dev` starts
        done = subprocess.run([sys.executable, "-m", "devtools.local_run", "--log", str(tmp_path / "dev.log")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    # THEN it says so in one line, with a port to use instead, and stops
    assert done.returncode == 1 and done.stdout == ""
    assert re.fullmatch(rf"port {port} is in use — try `{variable}=(\d+) make dev`\n", done.stderr), done.stderr
    suggested = int(re.search(r"=(\d+) ", done.stderr).group(1))
    assert suggested > port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # free


def test_a_port_set_to_another_servers_is_in_use_too():
    from devtools.local_run import port_in_use

    with held_port() as free:  # a port no one else has: closed below, then asked for twice
        port = free.getsockname()[1]
    refusal = port_in_use({"DYNAMODB_PORT": ("127.0.0.1", port), "SIMULATED_PROVIDER_PORT": ("127.0.0.1", 0),
                           "PORT": ("127.0.0.1", port)})
    assert refusal is not None and refusal.startswith(f"port {port} is in use — try `PORT=")
    assert port_in_use({"PORT": ("127.0.0.1", 0), "DYNAMODB_PORT": ("127.0.0.1", 0)}) is None


def test_the_local_run_serves_the_chat_page_beside_the_api(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="chat.js">' in page.text
    for path in ("/chat.js", "/relay-client.js", "/vendor/marked.esm.js", "/vendor/purify.es.js"):
        script = client.get(path)
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript"), path
    assert client.get("/chat/stream").status_code == 405  # the page's files do not shadow the API


def test_a_taken_dynamodb_port_is_a_clear_error_instead_of_a_wait_forever():
    from devtools.servers import DynamoDBThread

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is taken"):
            DynamoDBThread(port).start()


def test_every_file_of_the_page_is_served_with_its_security_headers(client, stack):
    from devtools.local_run import WEB_DIRECTORY

    bucket = stack.dynamodb.url  # the local S3, which the page uploads images to and shows them from

    files = ["/"] + [f"/{path.relative_to(WEB_DIRECTORY).as_posix()}" for path in sorted(WEB_DIRECTORY.rglob("*"))
                     if path.is_file()]
    assert "/safety.js" in files and "/vendor/purify.es.js" in files
    for path in files:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", f"img-src 'self' data: {bucket}",
                          f"connect-src 'self' {bucket}", "frame-ancestors 'none'", "base-uri 'none'",
                          "form-action 'none'", "object-src 'none'"):
            assert f"{directive};" in f"{policy};", (path, directive)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
