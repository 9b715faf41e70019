"""Shared fixtures: one real local stack (moto's DynamoDB server, the simulated provider, the app under uvicorn),
all on loopback, started once per test session; and Chromium, for the tests that drive the page."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.local_run import TABLE_NAME, LocalRun

pytest_plugins = ["tests.aws_calls"]  # records the AWS calls the code makes, for the permission check

REAL_PROVIDER_VARIABLES = [
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "BEDROCK_MODELS",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "PROVIDER_KEYS_SECRET_ARN",
]

SCREENSHOTS = Path(".local/screenshots")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalRun]:
    for variable in REAL_PROVIDER_VARIABLES:  # tests never reach a real provider
        os.environ.pop(variable, None)
    # No limits and no retries in the shared stack: tests of those make apps of their own.
    os.environ.update(AUTH_MODE="none", RATE_LIMIT_REQUESTS_PER_MINUTE="0", RATE_LIMIT_CONCURRENT_STREAMS="0",
                      PROVIDER_MAX_RETRIES="0")
    run = LocalRun(port=0).start()
    yield run
    run.stop()


@pytest.fixture()
def client(stack: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def dynamodb(stack: LocalRun) -> Any:
    return stack.dynamodb_client()


class HeaderUser:
    """A test double at the authentication boundary: the user is whoever X-Test-User names."""

    async def user_id(self, headers: Mapping[str, str]) -> str:
        return headers["x-test-user"]


@contextmanager
def app_client(dynamodb: Any, timeout: float = 30, *, users_by_header: bool = False,
               **changes: Any) -> Iterator[httpx.Client]:
    """A client of an app of its own, over the shared table, with these settings changed from the shared stack's
    (timeouts, retries, the disconnect policy, ...); with ``users_by_header``, one user per X-Test-User."""
    from dataclasses import replace

    from devtools.servers import UvicornThread
    from relay.app import create_app
    from relay.config import Settings
    from relay.store import ChatStore

    settings = replace(Settings.from_environment(), **changes)
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)
    if users_by_header:
        server = UvicornThread(create_app(settings, store, authenticator=lambda http: HeaderUser()))
    else:
        server = UvicornThread(create_app(settings, store))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=timeout) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (its own browser download does not work on these machines); without it
    the test is skipped, unless ``REQUIRE_BROWSER=1`` (CI sets it) makes that a failure."""
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
    """A page in a fresh browser context; a failing test leaves its screenshot in ``.local/screenshots/``."""
    context = browser.new_context()
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


def count_items(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


def new_session(client: httpx.Client, model: str = "sim", **extra: Any) -> str:
    response = client.post("/sessions", json={"provider": "simulated", "model": model, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


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
