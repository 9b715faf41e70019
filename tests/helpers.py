"""Helpers the test modules share, imported by name: apps of their own over the shared table, sessions, a chat turn
read as SSE, the stored messages, images (a PNG made on the spot, an upload as a browser makes it), EMF lines, a
boto3 client that times its calls, a wait for a condition. Fixtures (the shared stack, the browser) live in
conftest.py, and the page's own helpers (deploy_page, static_server) with the browser there."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from devtools.local_run import TABLE_NAME, LocalRun
from devtools.simulated_provider import StreamRecord

__all__ = ["HeaderUser", "OneUserOfItsOwn", "Received", "RecordingClient", "app_client", "check_event_answer",
           "count_items", "disconnect_after_three_tokens", "emf_lines", "last_record", "messages_of", "new_session",
           "png", "provider_calls", "relay_server", "stream_chat", "stream_in_background", "upload_image", "wait_for"]


@dataclass
class Received:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # each event's SSE id
    first_token_at: float | None = None

    @property
    def tokens(self) -> list[str]:
        return [data["text"] for name, data in self.events if name == "token"]

    @property
    def reasoning(self) -> list[str]:
        return [data["text"] for name, data in self.events if name == "reasoning"]

    def add(self, sse: Any) -> None:
        self.events.append((sse.event, sse.json()))
        self.ids.append(sse.id or None)

    def one(self, name: str) -> dict[str, Any]:
        [data] = [data for event, data in self.events if event == name]
        return data


def stream_chat(client: httpx.Client, chat_session_id: str, content: str = "Hello there",
                headers: dict[str, str] | None = None) -> Received:
    received = Received()
    body = {"chatSessionId": chat_session_id, "content": content}
    with connect_sse(client, "POST", "/chat/stream", json=body, headers=headers or {}) as src:
        assert src.response.status_code == 200
        for sse in src.iter_sse():
            if sse.event == "token" and received.first_token_at is None:
                received.first_token_at = time.perf_counter()
            received.add(sse)
    return received


def last_record(stack: LocalRun, model: str) -> StreamRecord:
    return [record for record in stack.provider.records if record.model == model][-1]


def provider_calls(stack: LocalRun, model: str) -> int:
    """How many requests the simulated provider has had for ``model`` in this run: a test that counts them needs a
    model string no other test uses (a no-op parameter such as ``fault_at=99`` makes one)."""
    return len([record for record in stack.provider.records if record.model == model])


def messages_of(client: httpx.Client, chat_session_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/sessions/{chat_session_id}/messages")
    assert response.status_code == 200
    return response.json()["messages"]


def disconnect_after_three_tokens(client: httpx.Client, chat_session_id: str) -> list[str]:
    body = {"chatSessionId": chat_session_id, "content": "hi"}
    tokens: list[str] = []
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        for sse in source.iter_sse():
            if sse.event == "token":
                tokens.append(sse.json()["text"])
            if len(tokens) == 3:
                break  # leaving the block closes the connection mid-answer
    return tokens


class RecordingClient:
    """A boto3 client whose calls are timed, with writes slowed down so that waiting for them would show."""

    def __init__(self, client: Any, write_delay: float = 0.0) -> None:
        self._client = client
        self._write_delay = write_delay
        self.calls: list[tuple[str, float, float]] = []

    def __getattr__(self, operation: str) -> Any:
        method = getattr(self._client, operation)

        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            if operation in ("batch_write_item", "transact_write_items"):
                time.sleep(self._write_delay)
            try:
                return method(**kwargs)
            finally:
                self.calls.append((operation, started, time.perf_counter()))

        return timed


def stream_in_background(client: httpx.Client, chat_session_id: str) -> tuple[Received, threading.Thread]:
    received = Received()

    def read() -> None:
        body = {"chatSessionId": chat_session_id, "content": "hi"}
        with connect_sse(client, "POST", "/chat/stream", json=body) as source:
            for sse in source.iter_sse():
                received.events.append((sse.event, sse.json()))

    thread = threading.Thread(target=read)
    thread.start()
    return received, thread


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


class OneUserOfItsOwn:
    """No authentication, as AUTH_MODE=none: everyone is one user, but not the shared stack's local user, whose
    sessions (the demo session among them) other tests use, and an accepted DELETE /sessions would erase."""

    def __init__(self, user_id: str) -> None:
        self._user_id = user_id

    async def user_id(self, headers: Mapping[str, str]) -> str:
        return self._user_id


class HeaderUser:
    """A test double at the authentication boundary: the user is whoever X-Test-User names."""

    async def user_id(self, headers: Mapping[str, str]) -> str:
        return headers["x-test-user"]


@contextmanager
def relay_server(dynamodb: Any, web_directory: Path | None = None, *, users_by_header: bool = False,
                 **changes: Any) -> Iterator[str]:
    """The URL of an app of its own, over the shared table, with these settings changed from the shared stack's
    (timeouts, retries, the disconnect policy, ...), serving the page in ``web_directory`` too when given; with
    ``users_by_header``, one user per X-Test-User."""
    from dataclasses import replace

    from devtools.local_run import web_routes
    from devtools.servers import UvicornThread
    from relay.app import attachment_store, create_app
    from relay.config import Settings
    from relay.store import ChatStore

    settings = replace(Settings.from_environment(), **changes)
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb,
                      attachments=attachment_store(settings))
    authenticator = {"authenticator": lambda http: HeaderUser()} if users_by_header else {}
    app = create_app(settings, store, **authenticator)
    if web_directory is not None:
        app.router.routes.extend(web_routes(web_directory))
    server = UvicornThread(app)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def app_client(dynamodb: Any, timeout: float = 30, *, users_by_header: bool = False,
               **changes: Any) -> Iterator[httpx.Client]:
    """A client of ``relay_server(dynamodb, users_by_header=..., **changes)``."""
    with relay_server(dynamodb, users_by_header=users_by_header, **changes) as url, \
            httpx.Client(base_url=url, timeout=timeout) as client:
        yield client


def count_items(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


def new_session(client: httpx.Client, model: str = "sim", **extra: Any) -> str:
    response = client.post("/sessions", json={"provider": "simulated", "model": model, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


def png(width: int = 1, height: int = 1, *, extra: bytes = b"") -> bytes:
    """A real PNG image (white pixels), ``extra`` bytes longer in an ancillary chunk (to reach a size)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\xff\xff\xff" * width for _ in range(height))
    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    padding = chunk(b"teXt", b"pad\0" + extra) if extra else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + padding + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def upload_image(client: httpx.Client, chat_session_id: str, data: bytes, media_type: str = "image/png",
                 size: int | None = None) -> str:
    """An image uploaded as a browser does it: a presigned upload from the relay, then a PUT of its bytes straight
    to the bucket (moto's S3). Its attachmentId."""
    created = client.post(f"/sessions/{chat_session_id}/attachments",
                          json={"mediaType": media_type, "size": len(data) if size is None else size})
    assert created.status_code == 201, created.text
    upload = created.json()
    put = httpx.put(upload["uploadUrl"], content=data, headers=upload["uploadHeaders"], timeout=30)
    assert put.status_code == 200, put.text
    return str(upload["attachmentId"])


def check_event_answer(event: dict[str, Any], chunks: list[tuple[httpx.Response, bytes]]) -> None:
    """An event file's request (devtools/invoke.py) answered in full by the local stack: a chat one streamed."""
    from devtools.simulated_provider import Scenario, answer_tokens

    response = chunks[0][0]
    body = b"".join(chunk for _, chunk in chunks).decode()
    assert response.status_code < 400, body
    if event["rawPath"] == "/chat/stream":
        if "text/plain" in event["headers"].get("accept", ""):
            assert body == "".join(answer_tokens(Scenario().tokens))
        elif "protocol=ai-sdk" in event["rawQueryString"]:
            assert '"type":"text-delta"' in body and body.endswith("data: [DONE]\n\n")
            assert len(chunks) > 3
        else:
            assert "event: done" in body
            assert len(chunks) > 3  # it arrived in pieces, not as one buffered body


def emf_lines(captured: str) -> list[dict[str, Any]]:
    """The EMF blobs among captured stdout lines (Powertools' documented test pattern)."""
    return [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]
