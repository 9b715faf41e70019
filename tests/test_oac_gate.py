"""The CloudFront OAC + AWS_IAM function URL stand-in (devtools/oac_gate.py) over real loopback HTTP, in front of
an app that records what reaches it: what Lambda refuses never gets there, the rest arrives signed and streams."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from devtools.oac_gate import CALLER_ARN, SIGNATURE_MISMATCH, create_gate, signature_holds
from devtools.servers import UvicornThread

PAGE_ORIGIN = "http://page.test"
BODY = json.dumps({"chatSessionId": "01HZY00000000000000000DEM0", "content": "Grüße 🙂"}, ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RecordingApp:
    """What stands behind the gate here: it records each request; ``/stream`` sends one event, then waits until the
    test has read it (``released``) before the next, so an answer the gate held back would show."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.released = threading.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST", "PUT", "PATCH"])])

    async def handle(self, request: Request) -> Response:
        self.received.append({"method": request.method, "url": str(request.url), "headers": dict(request.headers),
                              "body": await request.body()})
        if request.url.path == "/stream":
            return StreamingResponse(self.two_events(), media_type="text/event-stream")
        return JSONResponse({"ok": True})

    async def two_events(self) -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        released = await anyio.to_thread.run_sync(self.released.wait, 10.0)
        yield b"data: second\n\n" if released else b"data: the first event never reached the client\n\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[RecordingApp, str]]:
    app = RecordingApp()
    server = UvicornThread(app.app).start()
    yield app, server.url
    server.stop()


@pytest.fixture(scope="module")
def gate_url(upstream: tuple[RecordingApp, str]) -> Iterator[str]:
    server = UvicornThread(create_gate(upstream[1], allow_origins=[PAGE_ORIGIN])).start()
    yield server.url
    server.stop()


@pytest.fixture()
def app(upstream: tuple[RecordingApp, str]) -> RecordingApp:
    upstream[0].received.clear()
    upstream[0].released.clear()
    return upstream[0]


@pytest.fixture()
def gate(gate_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gate_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("declared", ["missing", "of other bytes", "of the body with one byte changed",
                                      "UNSIGNED-PAYLOAD"])
def test_a_body_without_its_true_hash_gets_lambdas_403_and_reaches_nothing(gate, app, method, declared):
    # GIVEN a body sent with no hash, or a hash that is not the body's
    hashes = {"missing": None, "of other bytes": sha256(b"{}"), "UNSIGNED-PAYLOAD": "UNSIGNED-PAYLOAD",
              "of the body with one byte changed": sha256(BODY.replace(b"Gr", b"gr"))}
    headers = {"x-amz-content-sha256": hashes[declared]} if hashes[declared] else {}
    # WHEN it goes through the gate
    response = gate.request(method, "/chat/stream", content=BODY, headers=headers)
    # THEN it is refused as Lambda refuses a signature mismatch, and the app never sees it
    assert response.status_code == 403
    assert response.json() == {"message": SIGNATURE_MISMATCH}
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert app.received == []


def test_a_body_with_its_hash_arrives_whole_signed_by_the_gate_in_place_of_the_viewers_authorization(gate, app,
                                                                                                       upstream):
    # GIVEN a viewer that sends the body's hash, a token of its own in both headers, and a forged caller
    forged = json.dumps({"authorizer": {"iam": {"userArn": "arn:aws:iam::111111111111:user/mallory"}}})
    headers = {"x-amz-content-sha256": sha256(BODY), "Authorization": "Bearer viewer-token",
               "X-User-Authorization": "Bearer user-token", "x-amzn-request-context": forged}
    # WHEN it posts through the gate
    response = gate.post("/sessions/x/messages?limit=5", content=BODY, headers=headers)
    # THEN the app gets the body as sent, the user's token untouched, and the gate's SigV4 signature instead of
    # the viewer's Authorization, which holds for the request as the app received it
    assert response.status_code == 200
    [received] = app.received
    assert received["body"] == BODY
    assert received["url"] == f"{upstream[1]}/sessions/x/messages?limit=5"
    assert received["headers"]["x-user-authorization"] == "Bearer user-token"
    authorization = received["headers"]["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=") and "/lambda/aws4_request" in authorization
    assert signature_holds("POST", received["url"], received["headers"], received["body"])
    # AND the caller is the IAM principal that signed, never what the viewer claimed
    context = json.loads(received["headers"]["x-amzn-request-context"])
    assert context["authorizer"]["iam"]["userArn"] == CALLER_ARN


def test_a_get_needs_no_hash(gate, app):
    response = gate.get("/sessions/x/messages/y/stream", headers={"Last-Event-ID": "5"})

    assert response.status_code == 200
    [received] = app.received
    assert (received["method"], received["headers"]["last-event-id"]) == ("GET", "5")


def test_the_answer_streams_through_the_gate_event_by_event(gate, app):
    # GIVEN an app that sends its second event only once the client has read the first
    with gate.stream("POST", "/stream", content=BODY, headers={"x-amz-content-sha256": sha256(BODY)}) as response:
        lines = response.iter_lines()
        # WHEN the client reads the first event
        assert next(lines) == "data: first"
        app.released.set()
        rest = [line for line in lines if line]
    # THEN it arrived before the app's answer ended: a gate that held the answer back would deliver it only after
    # the app gave up waiting
    assert rest == ["data: second"]


def test_cors_is_answered_for_the_pages_origin_with_the_hash_header_allowed_and_refusals_readable(gate, app):
    preflight = gate.options("/chat/stream", headers={
        "Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-content-sha256,x-user-authorization"})
    refused = gate.post("/chat/stream", content=BODY, headers={"Origin": PAGE_ORIGIN})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert app.received == []
