"""A chat turn end to end over real loopback HTTP: uvicorn + moto's DynamoDB server + the simulated provider."""

import json
import time
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from devtools.simulated_provider import answer_tokens
from tests.helpers import (
    RecordingClient,
    app_client,
    disconnect_after_three_tokens,
    emf_lines,
    last_record,
    messages_of,
    new_session,
    stream_chat,
)


def test_first_token_reaches_the_client_before_the_provider_sends_its_last(client, stack):
    # GIVEN a provider that takes about a second to stream 20 tokens
    model = "sim:first_token_ms=50,tokens_per_second=20,tokens=20"
    chat_session_id = new_session(client, model)
    # WHEN the client streams an answer
    received = stream_chat(client, chat_session_id)
    # THEN the first token arrived while the provider still had most of its answer to send
    record = last_record(stack, model)
    assert record.finished
    assert received.first_token_at is not None and record.last_token_at is not None
    assert received.first_token_at < record.last_token_at - 0.5


def test_events_come_in_order_and_the_stored_answer_is_every_token_concatenated(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=10,tokens_per_second=0,tokens=60,words=tricky")
    received = stream_chat(client, chat_session_id, "What is streaming?")

    names = [name for name, _ in received.events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    assert received.tokens == answer_tokens(60, "tricky")  # nothing lost, split or reordered (SSE-like text too)
    start, done = received.one("start"), received.one("done")

    user, ai = messages_of(client, chat_session_id)
    assert (user["messageId"], user["role"], user["content"], user["status"]) == (
        start["userMessageId"], "user", "What is streaming?", "complete")
    assert (ai["messageId"], ai["role"], ai["status"]) == (start["messageId"], "ai", "complete")
    assert ai["content"] == "".join(received.tokens)
    assert done["messageId"] == ai["messageId"]
    assert done["finishReason"] == "stop"
    assert done["usage"] == {"inputTokens": 3, "outputTokens": 60}  # the simulated provider counts words
    assert ai["metadata"]["usage"] == done["usage"]
    assert ai["metadata"]["provider"] == "simulated"
    assert ai["metadata"]["finishReason"] == "stop"
    assert ai["metadata"]["ttftMs"] == done["ttftMs"]


def test_ttft_and_tokens_per_second_are_consistent_with_the_simulated_provider(client, capsys):
    model = "sim:first_token_ms=400,tokens_per_second=25,tokens=26"
    chat_session_id = new_session(client, model)
    capsys.readouterr()
    done = stream_chat(client, chat_session_id).one("done")

    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert 400 <= blob["TimeToFirstToken"][0] < 1400
    assert blob["TimeToFirstToken"][0] == done["ttftMs"]
    # 26 tokens over the 25 intervals of 40 ms between the first and the last: about 26 per second
    assert 10 < blob["TokensPerSecond"][0] < 60
    assert blob["OutputTokens"] == [26.0]
    assert blob["StreamCompleted"] == [1.0] and blob["StreamErrors"] == [0.0]
    assert blob["StreamDuration"][0] >= blob["TimeToFirstToken"][0]
    assert 0 <= blob["RelayOverhead"][0] < blob["TimeToFirstToken"][0]
    assert blob["Retries"] == [0.0] and blob["Fallbacks"] == [0.0]


def test_provider_error_mid_stream_ends_in_an_error_event_and_a_stored_error(client, capsys):
    model = "sim:first_token_ms=10,tokens_per_second=0,fault=error_after,fault_at=3"
    chat_session_id = new_session(client, model)
    capsys.readouterr()
    received = stream_chat(client, chat_session_id)

    assert [name for name, _ in received.events] == ["start", "token", "token", "token", "error"]
    assert received.one("error")["code"] == "provider_error"
    _, ai = messages_of(client, chat_session_id)
    assert ai["status"] == "error"
    assert ai["content"] == "".join(answer_tokens(3))
    assert ai["metadata"]["error"]["code"] == "provider_error"
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert blob["StreamErrors"] == [1.0] and blob["StreamCompleted"] == [0.0]


def test_dropped_provider_connection_is_stored_as_incomplete(client):
    chat_session_id = new_session(client, "sim:first_token_ms=10,tokens_per_second=0,fault=drop_after,fault_at=4")
    received = stream_chat(client, chat_session_id)

    assert received.tokens == answer_tokens(4)
    assert received.one("error")["code"] == "provider_incomplete"
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("incomplete", "".join(answer_tokens(4)))


@pytest.mark.parametrize(
    ("fault", "code"),
    [("http_401", "provider_auth"), ("http_429", "provider_rate_limited"), ("http_500", "provider_unavailable")],
)
def test_provider_http_error_ends_in_an_error_event_and_a_stored_error(client, fault, code):
    chat_session_id = new_session(client, f"sim:fault={fault}")
    received = stream_chat(client, chat_session_id)

    assert [name for name, _ in received.events] == ["start", "error"]
    error = received.one("error")
    assert error["code"] == code
    assert "sk-" not in error["message"]
    user, ai = messages_of(client, chat_session_id)
    assert user["status"] == "complete"
    assert (ai["status"], ai["content"], ai["metadata"]["error"]["code"]) == ("error", "", code)


def test_the_next_turn_sends_the_system_text_and_the_history_to_the_provider(client, stack):
    model = "sim:first_token_ms=5,tokens_per_second=0,tokens=3"
    chat_session_id = new_session(client, model, system="Answer briefly.")
    first = stream_chat(client, chat_session_id, "First question")
    stream_chat(client, chat_session_id, "Second question")

    assert last_record(stack, model).messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "".join(first.tokens)},
        {"role": "user", "content": "Second question"},
    ]


def test_sse_response_headers_prevent_buffering(client):
    chat_session_id = new_session(client, "sim:first_token_ms=5,tokens=2")
    with client.stream("POST", "/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        response.read()


def test_accept_text_plain_streams_only_the_raw_text(client):
    chat_session_id = new_session(client, "sim:first_token_ms=5,tokens_per_second=0,tokens=30")
    response = client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "hi"},
                           headers={"accept": "text/plain"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "".join(answer_tokens(30))


def final_message(client: httpx.Client, chat_session_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (ai := (messages_of(client, chat_session_id) or [{"status": "pending"}])[-1])["status"] \
            in ("pending", "streaming") and time.monotonic() < deadline:
        time.sleep(0.05)
    return ai


def test_a_client_that_disconnects_mid_answer_still_gets_the_whole_answer_stored(client, stack, capsys):
    # GIVEN the default: a disconnect does not stop the turn (most are network blips, and Lambda is not told)
    model = "sim:first_token_ms=5,tokens_per_second=20,tokens=30"
    chat_session_id = new_session(client, model)
    # WHEN the client leaves after three tokens
    tokens = disconnect_after_three_tokens(client, chat_session_id)
    # THEN the provider is read to its end and the whole answer is stored, the disconnect counted
    ai = final_message(client, chat_session_id)
    assert ai["status"] == "complete"
    assert ai["content"] == "".join(answer_tokens(30)) and ai["content"].startswith("".join(tokens))
    assert last_record(stack, model).finished
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert (blob["ClientDisconnects"], blob["StreamCompleted"], blob["StreamErrors"]) == ([1.0], [1.0], [0.0])


def test_with_on_client_disconnect_cancel_the_upstream_request_closes_and_the_text_so_far_is_stored(
    stack, dynamodb, capsys
):
    model = "sim:first_token_ms=5,tokens_per_second=20,tokens=200"
    with app_client(dynamodb, on_client_disconnect="cancel") as cancelling:
        chat_session_id = new_session(cancelling, model)
        tokens = disconnect_after_three_tokens(cancelling, chat_session_id)
        ai = final_message(cancelling, chat_session_id)
    assert ai["status"] == "interrupted"
    assert ai["content"].startswith("".join(tokens)) and len(ai["content"]) < len("".join(answer_tokens(200)))
    assert not last_record(stack, model).finished  # the upstream request was closed
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert blob["ClientDisconnects"] == [1.0] and blob["StreamCompleted"] == [0.0]

def test_a_deployment_counts_unlisted_models_as_other_so_clients_cannot_create_metrics(stack, dynamodb, capsys):
    made_up = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
    with app_client(dynamodb, metrics_any_model=False) as http:  # the default outside the local run
        for model in ("sim", made_up):
            stream_chat(http, new_session(http, model), "hi")
    models = [blob["model"] for blob in emf_lines(capsys.readouterr().out) if "Requests" in blob]
    assert models == ["sim", "other"]


def test_one_read_precedes_the_provider_request_and_start_waits_for_the_message_to_be_stored(stack, dynamodb):
    from devtools.local_run import TABLE_NAME
    from devtools.servers import UvicornThread
    from relay.app import create_app
    from relay.store import ChatStore

    # GIVEN an app whose DynamoDB writes take 300 ms
    recording = RecordingClient(dynamodb, write_delay=0.3)
    app = create_app(store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: recording))
    server = UvicornThread(app).start()
    arrivals: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
            chat_session_id = new_session(client, model)
            recording.calls.clear()
            # WHEN a turn runs
            body = {"chatSessionId": chat_session_id, "content": "Hello there"}
            with connect_sse(client, "POST", "/chat/stream", json=body) as source:
                for sse in source.iter_sse():
                    arrivals.setdefault(sse.event, time.perf_counter())
    finally:
        server.stop()
    # THEN the provider request arrived after one Query and before the message's write finished
    provider_started = last_record(stack, model).started_at
    before = [operation for operation, _, ended in recording.calls if ended < provider_started]
    assert before == ["query"]
    (_, _, stored), (_, _, answered) = [call for call in recording.calls if call[0] == "transact_write_items"]
    assert provider_started < stored
    # AND the client heard of its message only once it was stored (a crash after start loses nothing)
    assert stored < arrivals["start"] < answered < arrivals["done"]
    assert [operation for operation, _, _ in recording.calls if operation != "update_item"] == [
        "query", "transact_write_items", "transact_write_items"]  # update_item: the checkpoints


def test_logs_and_metrics_of_a_turn_hold_no_prompt_or_answer_text(client, capsys, caplog):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=12",
                                  system="SYSTEM-SECRET-TEXT")
    received = stream_chat(client, chat_session_id, "PROMPT-SECRET-TEXT")
    output = capsys.readouterr().out + "\n".join(
        f"{record.getMessage()} {record.__dict__}" for record in caplog.records
    )
    assert "stream ended" in output
    for secret in ("PROMPT-SECRET-TEXT", "SYSTEM-SECRET-TEXT", "".join(received.tokens[2:6])):
        assert secret not in output


def test_a_client_that_stops_reading_without_leaving_cannot_hold_the_answer_up(client, stack, monkeypatch):
    # GIVEN a client that sends its request, then never reads, and an answer far larger than the socket buffers
    import socket

    import relay.app

    monkeypatch.setattr(relay.app, "SEND_TIMEOUT_SECONDS", 0.5)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=150000"
    chat_session_id = new_session(client, model)
    host, port = stack.url.removeprefix("http://").split(":")
    body = json.dumps({"chatSessionId": chat_session_id, "content": "hi"}).encode()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((host, int(port)))
    try:
        stalled.sendall(b"POST /chat/stream HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # WHEN it is never read THEN the turn still ends, and the whole answer is stored
        ai = final_message(client, chat_session_id, timeout=30)
    finally:
        stalled.close()
    assert ai["status"] == "complete"
    assert len(ai["content"]) == len("".join(answer_tokens(150000)))


def test_the_turns_log_breaks_the_time_to_first_token_down(client, caplog):
    chat_session_id = new_session(client, "sim:first_token_ms=200,tokens_per_second=0,tokens=3")
    stream_chat(client, chat_session_id)
    [ended] = [r for r in caplog.records if r.getMessage() == "stream ended" and r.chat_session_id == chat_session_id]
    assert 0 <= ended.store_read_ms <= ended.relay_overhead_ms
    assert ended.provider_connect_ms >= 0
    assert 0 < ended.provider_first_byte_ms < ended.ttft_ms  # the status line comes before the first token



def test_turns_started_in_the_same_millisecond_in_one_session_keep_every_message(client, monkeypatch):
    # GIVEN ULIDs all made in one millisecond, where python-ulid makes each id the last one plus one (two tabs
    # starting turns at once; here back to back, with nothing else in the process making a ULID between them: a
    # Lambda request id, and a provider format whose simulated events carry no ULID)
    import ulid

    frozen = ulid.default_generator.clock()
    monkeypatch.setattr(ulid.default_generator, "clock", lambda: frozen)
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3", provider="gemini")
    lambda_context = {"x-amzn-lambda-context": json.dumps({"request_id": "same-millisecond"})}
    # WHEN two turns are taken in that session
    first, second = (stream_chat(client, chat_session_id, content, lambda_context) for content in ("one", "two"))
    # THEN each message has an id of its own, and both turns are stored whole
    ids = [first.one("start")["userMessageId"], first.one("start")["messageId"],
           second.one("start")["userMessageId"], second.one("start")["messageId"]]
    assert len(set(ids)) == 4, ids
    stored = [(message["messageId"], message["role"], message["content"])
              for message in messages_of(client, chat_session_id)]
    assert stored == [(ids[0], "user", "one"), (ids[1], "ai", "".join(first.tokens)),
                      (ids[2], "user", "two"), (ids[3], "ai", "".join(second.tokens))]
