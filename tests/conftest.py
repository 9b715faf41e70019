"""Shared fixtures: one real local stack (moto's DynamoDB server, the simulated provider, the app under uvicorn),
all on loopback, started once per test session; and the browser the page's tests drive, with the helpers that deploy
the page for it. Plain helpers the test modules share are in tests/helpers.py."""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.local_run import DEMO_SESSION_ID, WEB_DIRECTORY, LocalRun
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
