"""The relay's process killed mid-turn (a crash, or Lambda's timeout), in a process of its own over the test
stack's DynamoDB: an accepted message survives, its answer ends as interrupted with the text checkpointed, and
the dead run's stream lease is soon free again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse
from ulid import ULID

from devtools.servers import create_table
from devtools.simulated_provider import answer_tokens
from tests.helpers import messages_of
from tests.outage import AppProcess, app_process

SLOW = "sim:first_token_ms=0,tokens_per_second=20,tokens=200"  # ten seconds of answer
FUNCTION_TIMEOUT = 4  # the child's deadline, so that its answers read as interrupted soon after it dies
LEASE_MARGIN = 1


@pytest.fixture()
def environment(stack, dynamodb) -> dict[str, str]:
    limits = f"crash-limits-{ULID()}"  # every user is one local user: a table of its own keeps other tests' leases out
    create_table(dynamodb, limits)
    return {"LIMITS_TABLE_NAME": limits, "RATE_LIMIT_CONCURRENT_STREAMS": "1",
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "0", "FUNCTION_TIMEOUT_SECONDS": str(FUNCTION_TIMEOUT),
            "DEADLINE_MARGIN_SECONDS": "1", "FIRST_TOKEN_TIMEOUT_SECONDS": "2", "CHECKPOINT_SECONDS": "0.3"}


@pytest.fixture()
def app(environment) -> Iterator[AppProcess]:
    with app_process(environment, lease_margin_seconds=LEASE_MARGIN) as child:
        yield child


def start_and_kill(app: AppProcess, chat_session_id: str, tokens_before_kill: int) -> tuple[dict[str, str], str]:
    """Stream a turn and kill the process once ``tokens_before_kill`` tokens have come (0: at ``start``)."""
    body = {"chatSessionId": chat_session_id, "content": "keep me"}
    received = ""
    with httpx.Client(base_url=app.url, timeout=30) as client, \
            connect_sse(client, "POST", "/chat/stream", json=body) as source:
        for index, sse in enumerate(source.iter_sse()):
            if sse.event == "start":
                start = sse.json()
            else:
                received += sse.json().get("text", "")
            if index == tokens_before_kill:
                app.kill()
                break
    return start, received


@pytest.mark.parametrize("tokens_before_kill", [0, 12])
def test_a_message_announced_with_start_survives_a_crash_and_its_answer_ends_interrupted(
        app, client, tokens_before_kill):
    chat_session_id = httpx.post(app.url + "/sessions", json={"provider": "simulated", "model": SLOW}).json()[
        "chatSessionId"]
    killed_at = time.time()
    start, received = start_and_kill(app, chat_session_id, tokens_before_kill)
    # THEN the message the client was told about is stored, and so is its answer, still live for now
    user, answer = messages_of(client, chat_session_id)
    assert (user["messageId"], user["content"], answer["messageId"]) == (
        start["userMessageId"], "keep me", start["messageId"])
    assert answer["status"] in ("pending", "streaming")
    # WHEN the dead run's deadline has passed THEN its answer reads as interrupted, with the text checkpointed
    time.sleep(max(0.0, killed_at + FUNCTION_TIMEOUT + 0.5 - time.time()))
    [_, answer] = messages_of(client, chat_session_id)
    assert answer["status"] == "interrupted"
    assert "".join(answer_tokens(200)).startswith(answer["content"])
    assert len(answer["content"]) <= len(received) or tokens_before_kill == 0


def test_a_dead_runs_stream_lease_is_free_again_soon_after_its_deadline(app, environment):
    chat_session_id = httpx.post(app.url + "/sessions", json={"provider": "simulated", "model": SLOW}).json()[
        "chatSessionId"]
    requested_at = time.monotonic()
    start_and_kill(app, chat_session_id, 3)
    # WHEN the function starts again THEN the dead run's lease still counts against the limit of one stream
    with app_process(environment, lease_margin_seconds=LEASE_MARGIN) as restarted:
        body = {"chatSessionId": chat_session_id, "content": "again"}
        assert httpx.post(restarted.url + "/chat/stream", json=body).status_code == 429
        # AND soon after the dead run's deadline it is freed: the user is not locked out
        while (status := httpx.post(restarted.url + "/chat/stream", json={
                **body, "chatSessionId": chat_session_id}, timeout=30).status_code) == 429:
            assert time.monotonic() - requested_at < FUNCTION_TIMEOUT + LEASE_MARGIN + 5
            time.sleep(0.25)
        assert status == 200
