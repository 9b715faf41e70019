"""Shared fixtures: one real local stack (moto's DynamoDB server, the simulated provider, the app under uvicorn),
all on loopback, started once per test session; and the browser the page's tests drive."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.local_run import DEMO_SESSION_ID, TABLE_NAME, WEB_DIRECTORY, LocalRun
from devtools.page_headers import with_sources
from tests.auth_fixtures import Issuer, served_issuer

pytest_plugins = ["tests.aws_calls"]  # records the AWS calls the code makes, for the permission check

REAL_PROVIDER_VARIABLES = [
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "BEDROCK_MODELS",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "PROVIDER_KEYS_SECRET_ARN",
]

@pytest.fixture(scope="session")
def stack() -> Iterator[LocalRun]:
    for variable in REAL_PROVIDER_VARIABLES:  # tests never reach a real provider
        os.environ.pop(variable, None)
    # No limits and no retries in the shared stack: tests of those make apps of their own.
    os.environ.update(AUTH_MODE="none", RATE_LIMIT_REQUESTS_PER_MINUTE="0", RATE_LIMIT_CONCURRENT_STREAMS="0",
                      PROVIDER_MAX_RETRIES="0")
    run = LocalRun(port=0).start()
    # The app makes its DynamoDB client in a thread once it serves, reading AWS_ENDPOINT_URL_DYNAMODB then: a first
    # request makes sure that is done before a test points the variable at a proxy of its own (test_brownout.py).
    assert httpx.get(f"{run.url}/sessions/{DEMO_SESSION_ID}/messages", timeout=30).status_code == 200
    yield run
    run.stop()


@pytest.fixture(scope="module")
def issuer(stack: LocalRun) -> Iterator[Issuer]:
    """A local OIDC issuer, serving its JWKS on loopback (tests/auth_fixtures.py)."""
    with served_issuer() as issuer:
        yield issuer


@pytest.fixture()
def client(stack: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def dynamodb(stack: LocalRun) -> Any:
    return stack.dynamodb_client()


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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test item, so a fixture can tell in its teardown that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# The browser: Debian's Chromium driven by Playwright (its own browser download does not work on these machines).
SCREENSHOTS = Path(".local/screenshots")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


# Per module: a session-wide one would be set up before the session's stack when a test asks for it first, and
# Playwright's event loop in this thread keeps the stack's setup (asyncio.run) from running.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium) and REQUIRE_BROWSER is set")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh browser context; a failing test leaves its screenshot in .local/screenshots/."""
    yield from _page(browser, request)


@pytest.fixture()
def page_without_csp(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page whose browser ignores Content-Security-Policy: what the page's own code does, with no policy behind
    it (as on a host whose policy is too wide)."""
    yield from _page(browser, request, bypass_csp=True)


@pytest.fixture()
def user_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A page whose every request names a user of its own (a fresh id) in X-Test-User, and that user: for an app
    made with ``users_by_header``, whose conversation list and usage are then that user's alone."""
    from ulid import ULID

    user = f"page-user-{ULID()}"
    pages = _page(browser, request, extra_http_headers={"x-test-user": user})
    yield next(pages), user
    next(pages, None)


def _page(browser: Any, request: pytest.FixtureRequest, **context_options: Any) -> Iterator[Any]:
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
    context.close()


def deploy_page(directory: Path, connect: tuple[str, ...] = (), images: tuple[str, ...] = (), **settings: str) -> Path:
    """A copy of web/ in ``directory``, as a deployer edits it: the ``<meta>`` settings given (``relay_url=``,
    ``relay_allowlist=``, ``image_origins=``), and origins added to the policy's connect-src and img-src."""
    shutil.copytree(WEB_DIRECTORY, directory, dirs_exist_ok=True)
    index = directory / "index.html"
    html = index.read_text()
    for name, value in settings.items():
        html, found = re.subn(rf'(<meta name="{name.replace("_", "-")}" content=")[^"]*"', rf'\g<1>{value}"', html)
        assert found == 1, name
    index.write_text(with_sources(html, connect=connect, images=images))
    return directory


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """The origin of a plain static file server of ``directory``: a host that sets no headers of its own."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
