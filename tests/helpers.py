"""Helpers the test modules share: a chat turn read as SSE, the stored messages, a boto3 client that times its calls,
a wait for a condition. Fixtures live in conftest.py; these are plain functions and classes, imported by name."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse

from devtools.local_run import LocalRun
from devtools.simulated_provider import StreamRecord

__all__ = ["Received", "RecordingClient", "disconnect_after_three_tokens", "last_record", "messages_of",
           "stream_chat", "stream_in_background", "wait_for"]


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
