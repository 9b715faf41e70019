"""What a failing network does, on loopback: a TCP proxy that a test can pause (bytes are held, so every call hangs
until its timeout), cut (open connections are closed, like a blip), make refuse connections (each new one is reset
at once), or let through again — between the app and DynamoDB, or between a browser and the app; and an app, run in
a process of its own, that a test can kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OPEN, PAUSED, REFUSING = "open", "paused", "refusing"


class FaultyProxy:
    """A TCP proxy in front of ``upstream_url`` (moto's DynamoDB server, or the app): ``pause()``, ``cut()``,
    ``refuse()`` and ``heal()``."""

    def __init__(self, upstream_url: str) -> None:
        host, port = upstream_url.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode = OPEN
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        """Every byte in either direction is held from now on: calls hang, as on a table that stops answering."""
        self.mode = PAUSED

    def cut(self) -> None:
        """Open connections are closed at once; new ones go through, as after a network blip."""
        with self.lock:
            sockets, self.connections = self.connections, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def refuse(self) -> None:
        """Open connections are reset, and so is every new one, as when nothing listens any more."""
        self.mode = REFUSING
        with self.lock:
            sockets, self.connections = self.connections, []
        for sock in sockets:
            _reset(sock)

    def heal(self) -> None:
        self.mode = OPEN

    def close(self) -> None:
        self.refuse()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == REFUSING:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.mode == PAUSED:
                    time.sleep(0.01)
                if self.mode == REFUSING:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    sock.close()


# The app in a process of its own, with the lease constants shortened so that a test can see them run out.
RUN_APP = """
import sys, uvicorn
import relay.limits
relay.limits.STREAM_LEASE_SECONDS = int(sys.argv[2])
relay.limits.STREAM_LEASE_DEADLINE_MARGIN_SECONDS = int(sys.argv[3])
from relay.app import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class AppProcess:
    """The app under uvicorn in a child process, over the test stack's DynamoDB (or a proxy of it) and provider,
    that ``kill()`` stops the way a crash or Lambda's timeout does: SIGKILL, nothing runs after it."""

    def __init__(self, environment: dict[str, str], lease_seconds: int = 30, lease_margin_seconds: int = 10) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, **environment,
               "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("layers/relay", "functions/chat", "."))}
        self.log = tempfile.TemporaryFile()  # its output, shown if it fails to start; closed by stop()  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_APP, str(self.port), str(lease_seconds), str(lease_margin_seconds)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.log.seek(0)
                raise RuntimeError(f"the app did not start: {self.log.read().decode()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.log.close()


@contextlib.contextmanager
def app_process(environment: dict[str, str], **lease: Any) -> Iterator[AppProcess]:
    app = AppProcess(environment, **lease)
    try:
        yield app
    finally:
        app.stop()
