"""AuthMode iam from a browser: the chat page, served as static files with ``<meta name="relay-auth" content="iam">``,
talks to the app (AUTH_MODE=iam) through devtools/oac_gate.py, which refuses and signs as CloudFront's Origin
Access Control and an AWS_IAM function URL do. Chromium is driven by Playwright, as in tests/test_web_page.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from devtools.local_run import TABLE_NAME, WEB_DIRECTORY
from devtools.oac_gate import CALLER_ARN, create_gate
from devtools.servers import UvicornThread
from devtools.simulated_provider import answer_tokens
from relay.app import create_app
from relay.auth import authenticator_from_environment
from relay.config import Settings
from relay.store import ChatStore
from tests.auth_fixtures import AUDIENCE, Issuer
from tests.conftest import deploy_page
from tests.helpers import messages_of
from tests.test_web_page import open_chat, send, session_of, watch_until, words

SESSION = {"provider": "simulated", "model": "sim:first_token_ms=0,tokens_per_second=0,tokens=3"}


@contextmanager
def relay_behind_the_gate(dynamodb: Any, environ: dict[str, str], page_origin: str = "") -> Iterator[str]:
    """The app with these auth settings, its CORS off as on Lambda, behind a gate; yields the gate's URL."""
    settings = replace(Settings.from_environment(), cors_allow_origins=())
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb)
    app = UvicornThread(create_app(settings, store, lambda http: authenticator_from_environment(http, environ)))
    app.start()
    gate = UvicornThread(create_gate(app.url, allow_origins=[page_origin] if page_origin else [])).start()
    try:
        yield gate.url
    finally:
        gate.stop()
        app.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A copy of web/ served as plain static files on an origin of its own (the page's index.html is set later)."""
    directory = tmp_path_factory.mktemp("site") / "web"
    shutil.copytree(WEB_DIRECTORY, directory)
    server = UvicornThread(Starlette(routes=[Mount("/", StaticFiles(directory=directory, html=True))])).start()
    yield directory, server.url
    server.stop()


@pytest.fixture(scope="module")
def gate_url(stack: Any, dynamodb: Any, issuer: Issuer, site: tuple[Path, str]) -> Iterator[str]:
    """The relay as a CloudFront deployment has it, with the page deployed for it: relay-url and relay-auth set."""
    directory, origin = site
    environ = {"AUTH_MODE": "iam", "JWT_ISSUER": issuer.url, "JWT_AUDIENCE": AUDIENCE}
    with relay_behind_the_gate(dynamodb, environ, page_origin=origin) as url:
        deploy_page(directory, connect=(url,), relay_url=url, relay_auth="iam")
        yield url


@pytest.fixture()
def token(issuer: Issuer, page: Any, gate_url: str) -> str:
    """A user's token, in the page's token field from the first request on (the page keeps it in sessionStorage,
    under its relay's origin)."""
    token = issuer.token(sub="cloudfront-user")
    key = json.dumps(f"relay-token:{gate_url}")
    page.add_init_script(f"sessionStorage.setItem({key}, {json.dumps(token)})")
    return token


@pytest.fixture()
def reader(gate_url: str, token: str) -> Iterator[httpx.Client]:
    """Reads the user's sessions back through the gate (GETs need no hash)."""
    with httpx.Client(base_url=gate_url, timeout=30, headers={"X-User-Authorization": f"Bearer {token}"}) as client:
        yield client


def test_a_turn_streams_through_cloudfront_oac_with_each_body_hashed_and_the_token_beside_authorization(
        page, site, gate_url, token, reader):
    # GIVEN the page deployed for a relay behind CloudFront, and a record of what the browser sends
    posts: list[Any] = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else None)
    open_chat(page, site[1], "sim:first_token_ms=300,tokens_per_second=15,tokens=30")
    # WHEN a message is sent
    send(page, "Grüße through CloudFront 🙂")
    samples = watch_until(page, lambda state: state["status"] == "complete")
    # THEN the answer grew on screen before it was done, and ends as the stored answer
    growing = [len(state["text"]) for state in samples if state["status"] == "streaming"]
    assert len(set(growing)) >= 3, "the text should grow on screen several times before the done state"
    user, ai = messages_of(reader, session_of(page))
    assert user["content"] == "Grüße through CloudFront 🙂"
    assert (ai["messageId"], ai["status"]) == (samples[-1]["messageId"], "complete")
    assert words(samples[-1]["text"]) == words(ai["content"]) == words("".join(answer_tokens(30)))
    # AND every POST carried its body's SHA-256 and the token in X-User-Authorization, none in Authorization
    assert [post.url.removeprefix(gate_url) for post in posts] == ["/sessions", "/chat/stream"]
    for post in posts:
        headers = post.all_headers()
        assert headers["x-amz-content-sha256"] == hashlib.sha256(post.post_data_buffer).hexdigest()
        assert headers["x-user-authorization"] == f"Bearer {token}"
        assert "authorization" not in headers


def test_a_body_changed_after_it_was_hashed_is_refused_visibly_and_nothing_is_stored(page, site, gate_url, reader):
    # GIVEN something between the page and CloudFront that changes the message after the page hashed it
    tampered: list[str] = []

    def tamper(route: Any) -> None:
        body = route.request.post_data.replace("transfer 10", "transfer 99")
        tampered.append(body)
        route.continue_(post_data=body)

    page.route(f"{gate_url}/chat/stream", tamper)
    open_chat(page, site[1], "sim:first_token_ms=0,tokens_per_second=50,tokens=10")
    # WHEN the message is sent
    send(page, "transfer 10")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    # THEN the relay refuses it as Lambda refuses a signature mismatch, the page shows that, and nothing is stored
    assert tampered and "transfer 99" in tampered[0]
    assert final["status"] == "error"
    assert "signature" in final["meta"] and "http_403" in final["meta"]
    assert messages_of(reader, session_of(page)) == []


def test_without_an_issuer_the_user_is_the_iam_caller_the_function_url_names(stack, dynamodb):
    # GIVEN AUTH_MODE=iam with no issuer: the user is the IAM caller from the request context
    body = json.dumps(SESSION).encode()
    signed = {"Content-Type": "application/json", "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    with relay_behind_the_gate(dynamodb, {"AUTH_MODE": "iam"}) as url, httpx.Client(base_url=url) as gate:
        # WHEN a session is created through the gate, then read through it
        created = gate.post("/sessions", content=body, headers=signed)
        chat_session_id = created.json()["chatSessionId"]
        listed = gate.get(f"/sessions/{chat_session_id}/messages")
    # THEN both succeed as the gate's signer, whose session it is
    assert (created.status_code, listed.status_code) == (201, 200)
    key = {"PK": {"S": f"SESSION#{chat_session_id}"}, "SK": {"S": "SESSION"}}
    assert dynamodb.get_item(TableName=TABLE_NAME, Key=key)["Item"]["ownerId"] == {"S": CALLER_ARN}
