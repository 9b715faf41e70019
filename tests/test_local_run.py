"""`make dev` as a newcomer runs it: the real command, in its own process, streaming into the demo session."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from devtools.local_run import DEMO_SESSION_ID

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def dev_server(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/relay", "functions/chat", "."])}
    env.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_run", "--port", "0", "--dynamodb-port", "0", "--provider-port", "0",
         "--first-token-ms", "20", "--tokens-per-second", "50", "--tokens", "15", "--log", str(tmp_path / "dev.log")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    banner = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            banner.append(line)
            if line.strip().startswith("curl -s"):  # the banner's last line
                url = re.search(r"Chat relay running at (http://\S+)", "".join(banner)).group(1)
                yield url, "".join(banner), tmp_path / "dev.log"
                break
            if not line and process.poll() is not None:
                pytest.fail("make dev exited:\n" + "".join(banner))
        else:
            pytest.fail("make dev did not start:\n" + "".join(banner))
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


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
