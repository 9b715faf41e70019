"""Shared fixtures: one real local stack (moto's DynamoDB server, the simulated provider, the app under uvicorn),
all on loopback, started once per test session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from devtools.local_run import TABLE_NAME, LocalRun
from tests.auth_fixtures import Issuer

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
    yield run
    run.stop()


@pytest.fixture(scope="module")
def issuer(stack: LocalRun) -> Iterator[Issuer]:
    """A local OIDC issuer, serving its JWKS on loopback (tests/auth_fixtures.py)."""
    from devtools.servers import UvicornThread

    issuer = Issuer()
    server = UvicornThread(issuer.app).start()
    issuer.url = server.url
    yield issuer
    server.stop()


@pytest.fixture()
def client(stack: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def dynamodb(stack: LocalRun) -> Any:
    return stack.dynamodb_client()


@contextmanager
def app_client(dynamodb: Any, timeout: float = 30, **changes: Any) -> Iterator[httpx.Client]:
    """A client of an app of its own, over the shared table, with these settings changed from the shared stack's
    (timeouts, retries, the disconnect policy, ...)."""
    from dataclasses import replace

    from devtools.servers import UvicornThread
    from relay.app import create_app
    from relay.config import Settings
    from relay.store import ChatStore

    settings = replace(Settings.from_environment(), **changes)
    server = UvicornThread(create_app(settings, ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=timeout) as client:
            yield client
    finally:
        server.stop()


def count_items(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


def new_session(client: httpx.Client, model: str = "sim", **extra: Any) -> str:
    response = client.post("/sessions", json={"provider": "simulated", "model": model, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


def emf_lines(captured: str) -> list[dict[str, Any]]:
    """The EMF blobs among captured stdout lines (Powertools' documented test pattern)."""
    return [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test item, so a fixture can tell in its teardown that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
