"""`make smoke`: the end-to-end check users run against their stack, run here against the local stack, directly and
through proxies that break what it checks (one buffers whole responses, one edits the stored answer on its way)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devtools.servers import UvicornThread
from devtools.smoke import BUFFERING_CAUSES, run_smoke, streaming_problem

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class RelayProxy:
    """An HTTP proxy in front of the relay. ``buffered``: it reads each whole response before sending any of it, as a
    function URL in BUFFERED mode, an adapter not in response_stream mode or a buffering CDN would. ``edit_stored``:
    it streams through, but changes the answers in a session's message list, as a store that lost a write would."""

    def __init__(self, upstream: str, *, buffered: bool = False, edit_stored: bool = False) -> None:
        self.upstream = upstream
        self.buffered = buffered
        self.edit_stored = edit_stored
        self.app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])

    async def forward(self, request: Request) -> Response:
        http = httpx.AsyncClient(timeout=60)
        headers = {name: value for name, value in request.headers.items() if name not in HOP_HEADERS}
        upstream = http.build_request(request.method, self.upstream + request.url.path, params=request.query_params,
                                      headers=headers, content=await request.body())
        response = await http.send(upstream, stream=True)
        headers = {name: value for name, value in response.headers.items() if name not in HOP_HEADERS}
        lists_messages = request.method == "GET" and request.url.path.endswith("/messages")
        if self.buffered or (self.edit_stored and lists_messages):
            content = await response.aread()
            await response.aclose()
            await http.aclose()
            if self.edit_stored and lists_messages:
                content = _with_edited_answers(content)
            return Response(content, response.status_code, headers)

        async def close() -> None:
            await response.aclose()
            await http.aclose()

        return StreamingResponse(response.aiter_raw(), response.status_code, headers, background=BackgroundTask(close))


def _with_edited_answers(content: bytes) -> bytes:
    body = json.loads(content)
    for message in body["messages"]:
        if message["role"] == "ai":
            message["content"] += " (edited)"
    return json.dumps(body).encode()


@pytest.fixture()
def proxied(stack) -> Iterator[Any]:
    servers = []

    def start(**options: Any) -> str:
        server = UvicornThread(RelayProxy(stack.url, **options).app).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def smoke(url: str, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    return run_smoke(url, out=out, **options), out.getvalue()


def test_smoke_passes_against_the_local_stack_with_the_first_listed_provider_and_prints_ttft_and_speed(stack, client):
    # GIVEN the local stack, and what it offers first
    first = client.get("/providers").json()["providers"][0]

    # WHEN the smoke test runs with no provider or model given, as `make smoke URL=...` does
    status, output = smoke(stack.url)

    # THEN every step passes with that provider and model, and it reports TTFT and tokens per second
    assert status == 0, output
    assert f"{first['name']} with {first['models'][0]}" in output
    for step in ("health", "providers", "session", "stream", "stored", "resume"):
        assert f"ok    {step}" in output
    assert "TTFT " in output and " tokens/s " in output
    assert output.rstrip().endswith(f"smoke test passed against {stack.url}")


def test_smoke_fails_naming_buffering_behind_a_proxy_that_sends_whole_responses(proxied):
    # GIVEN the relay behind a proxy that holds each response until it is complete
    url = proxied(buffered=True)

    # WHEN the smoke test runs through it
    status, output = smoke(url)

    # THEN the stream check fails, and names the causes of buffering to look for
    assert status == 1, output
    assert "FAIL  stream    the tokens did not arrive incrementally" in output
    assert BUFFERING_CAUSES in output
    assert "AWS_LWA_INVOKE_MODE" in output and "BUFFERED" in output and "proxy" in output
    assert "ok    stream" not in output


def test_smoke_fails_when_the_stored_answer_differs_from_the_streamed_text(proxied):
    # GIVEN the relay behind a proxy that streams faithfully but changes the stored answers it lists
    url = proxied(edit_stored=True)

    # WHEN the smoke test runs through it
    status, output = smoke(url)

    # THEN the stream passes, the stored-answer check fails, saying where the two part
    assert status == 1, output
    assert "ok    stream" in output
    assert "FAIL  stored    the stored answer" in output and "differs from the streamed text" in output
    assert "stored ' (edited)', streamed ''" in output


def test_smoke_fails_with_its_reason_when_nothing_answers_at_the_url():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    status, output = smoke(url)

    assert status == 1
    assert "FAIL  health    GET /healthz failed: cannot connect" in output


def test_smoke_refuses_a_provider_the_relay_does_not_offer(stack):
    status, output = smoke(stack.url, provider="no-such-provider")

    assert status == 1
    assert "FAIL  providers 'no-such-provider' is not offered here" in output


def test_smoke_make_target_needs_a_url():
    result = subprocess.run(["make", "--no-print-directory", "smoke"], cwd=Path(__file__).resolve().parent.parent,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "usage: make smoke URL=" in result.stdout


# The criterion itself, on arrival times in seconds, with the relay's generation time beside them.

def test_token_reads_spread_over_the_generation_are_streaming():
    assert streaming_problem([0.20, 0.45, 0.70, 1.18], generation_seconds=1.0) is None


def test_token_reads_bunched_at_the_end_are_buffering_whatever_their_number():
    problem = streaming_problem([1.200, 1.201, 1.203, 1.204], generation_seconds=1.0, whole_body=True)
    assert problem is not None and BUFFERING_CAUSES in problem
    assert "4 network read(s) carried them, 4 ms apart" in problem and "over 1000 ms" in problem
    assert "Content-Length" in problem


def test_two_reads_are_too_few_to_show_streaming_even_far_apart():
    problem = streaming_problem([0.2, 1.2], generation_seconds=1.0)
    assert problem is not None and "2 network read(s)" in problem


def test_an_answer_generated_too_quickly_cannot_be_judged_and_fails_as_too_short():
    problem = streaming_problem([0.1, 0.15, 0.2], generation_seconds=0.1)
    assert problem is not None and "too quick to tell" in problem and "longer answer" in problem


def test_an_answer_without_the_relays_generation_time_cannot_be_judged():
    problem = streaming_problem([0.1], generation_seconds=None)
    assert problem is not None and "fewer than two deltas" in problem
