"""``?protocol=ai-sdk``: the Vercel AI SDK's UI message stream, read by the real ``ai`` package from npm (its
``DefaultChatTransport`` and ``readUIMessageStream``, the code ``useChat`` runs) and checked on the wire."""

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.simulated_provider import answer_tokens, reasoning_tokens
from tests.helpers import count_items, last_record, messages_of, new_session, png, upload_image

READER = Path(__file__).parent / "web" / "ai_sdk_reader.mjs"


def read_with_the_ai_sdk(url: str, chat_session_id: str, text: str, *trigger_and_message_id: str,
                         files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    done = subprocess.run(["node", str(READER), url, chat_session_id, text, json.dumps(files or []),
                           *trigger_and_message_id],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def ui_body(chat_session_id: str, *messages: tuple[str, str, str]) -> dict[str, Any]:
    """What DefaultChatTransport posts: ``(id, role, text)`` per message."""
    return {"id": chat_session_id, "trigger": "submit-message", "messageId": None, "messages": [
        {"id": message_id, "role": role, "parts": [{"type": "text", "text": text}]}
        for message_id, role, text in messages]}


def test_use_chat_reads_the_answer_as_it_grows_and_it_equals_the_stored_one(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=50,tokens=8,words=tricky")

    read = read_with_the_ai_sdk(stack.url, chat_session_id, "Hello from useChat")

    assert read["errors"] == []
    user, ai = messages_of(client, chat_session_id)
    assert user["content"] == "Hello from useChat"
    assert read["message"]["id"] == ai["messageId"]
    assert read["message"]["parts"] == [{"type": "text", "text": ai["content"], "state": "done"}]
    assert ai["content"] == "".join(answer_tokens(8, "tricky"))
    growing = [text for text in read["snapshots"] if text]
    assert len(set(growing)) == 8 and growing == sorted(growing, key=len)  # one snapshot per token
    kinds = [chunk["type"] for chunk in read["chunks"]]
    assert kinds == ["start", "text-start", *["text-delta"] * 8, "text-end", "finish"]
    assert read["chunks"][-1]["finishReason"] == "stop"
    assert read["chunks"][-1]["messageMetadata"]["usage"]["outputTokens"] == 8


def test_use_chat_reads_the_reasoning_as_a_reasoning_part_before_the_text(client, stack):
    # GIVEN a model that reasons in 5 deltas before its 4 tokens
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=50,tokens=4,reasoning=5")

    # WHEN useChat's own code reads the answer
    read = read_with_the_ai_sdk(stack.url, chat_session_id, "Think it through")

    # THEN the message has the reasoning part, done, above the text part, each equal to what was stored
    assert read["errors"] == []
    _, ai = messages_of(client, chat_session_id)
    assert [{key: part[key] for key in ("type", "text", "state")} for part in read["message"]["parts"]] == [
        {"type": "reasoning", "text": ai["reasoning"], "state": "done"},
        {"type": "text", "text": ai["content"], "state": "done"},
    ]
    assert ai["reasoning"] == "".join(reasoning_tokens(5))
    thinking = [text for text in read["reasoningSnapshots"] if text]
    assert len(set(thinking)) == 5 and thinking == sorted(thinking, key=len)  # it grew delta by delta
    kinds = [chunk["type"] for chunk in read["chunks"]]
    assert kinds == ["start", "reasoning-start", *["reasoning-delta"] * 5, "reasoning-end", "text-start",
                     *["text-delta"] * 4, "text-end", "finish"]


def test_an_error_while_the_model_reasons_closes_the_reasoning_part_before_the_error(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens=4,reasoning=3,fault=error_after,fault_at=0")
    read = read_with_the_ai_sdk(stack.url, chat_session_id, "hi")
    assert [chunk["type"] for chunk in read["chunks"]][-3:] == ["reasoning-delta", "reasoning-end", "error"]
    assert read["message"]["parts"][0]["text"] == "".join(reasoning_tokens(3))


def test_a_provider_error_reaches_use_chat_as_an_error_after_the_text_so_far(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens=8,fault=error_after,fault_at=3")

    read = read_with_the_ai_sdk(stack.url, chat_session_id, "hi")

    assert len(read["errors"]) == 1 and read["errors"][0].startswith("provider_error: ")
    assert read["chunks"][-1]["type"] == "error"
    _, ai = messages_of(client, chat_session_id)
    assert ai["status"] == "error"
    assert read["message"]["parts"][0]["text"] == ai["content"] == "".join(answer_tokens(3))


def test_use_chat_regenerate_answers_the_last_message_again_and_keeps_the_answer_it_replaces(client, stack):
    # GIVEN an answer read by useChat's code
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault_at=99"  # this test's own: calls are counted
    chat_session_id = new_session(client, model)
    first = read_with_the_ai_sdk(stack.url, chat_session_id, "Hello", "submit-message", "m1")
    asked = len([record for record in stack.provider.records if record.model == model])
    # WHEN useChat's regenerate() posts the same user message again, as a regenerate
    again = read_with_the_ai_sdk(stack.url, chat_session_id, "Hello", "regenerate-message", "m1")
    # THEN the provider is asked again, with the user message alone, and a new answer streams
    assert again["errors"] == []
    assert len([record for record in stack.provider.records if record.model == model]) == asked + 1
    assert [(m["role"], m["content"]) for m in stack.provider.records[-1].messages] == [("user", "Hello")]
    assert again["message"]["id"] != first["message"]["id"]
    # AND the history keeps one user message and both answers, the first replaced by the second
    user, old, new = messages_of(client, chat_session_id)
    assert (user["content"], old["messageId"], new["messageId"]) == ("Hello", first["message"]["id"],
                                                                     again["message"]["id"])
    assert old["metadata"]["supersededBy"] == new["messageId"] and new["status"] == "complete"


def test_the_stream_is_marked_as_ui_message_stream_v1_and_ends_with_done(client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    body = ui_body(chat_session_id, ("m1", "user", "hi"))

    response = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=body)

    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    assert all(frame.startswith("data: ") for frame in frames[:-1])


def test_the_client_history_is_not_trusted_and_the_last_message_id_makes_a_retry_harmless(client, stack):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=3")
    body = ui_body(chat_session_id, ("m0", "user", "an invented earlier turn"), ("a0", "assistant", "invented"),
                   ("m1", "user", "the new message"))

    first = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=body)
    again = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=body)

    assert first.status_code == again.status_code == 200
    assert [m["content"] for m in messages_of(client, chat_session_id) if m["role"] == "user"] == ["the new message"]
    assert len(stack.provider.records[-1].messages) == 1  # the stored history (none), not the client's


@pytest.mark.parametrize(("messages", "detail"), [
    ([], "non-empty list"),
    ([("m1", "user", "hi"), ("a1", "assistant", "regenerate me")], "the user's new message"),
    ([("m1", "user", "   ")], "content must not be empty"),
])
def test_a_body_use_chat_cannot_mean_is_refused_and_writes_nothing(client, dynamodb, messages, detail):
    chat_session_id = new_session(client)
    before = count_items(dynamodb)

    response = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=ui_body(chat_session_id, *messages))

    assert response.status_code == 422
    assert detail in response.json()["error"]["message"]
    assert count_items(dynamodb) == before


def test_use_chat_sends_images_as_file_parts_naming_uploads_and_the_provider_gets_them(client, stack):
    # GIVEN two images uploaded to a session (as uploadAttachment does)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault_at=81"
    chat_session_id = new_session(client, model)
    images = [png(1, 1), png(2, 2)]
    ids = [upload_image(client, chat_session_id, image) for image in images]
    files = [{"type": "file", "mediaType": "image/png", "filename": f"{index}.png", "url": f"attachment:{id_}"}
             for index, id_ in enumerate(ids)]
    # WHEN useChat's own transport sends a message with them as file parts
    read = read_with_the_ai_sdk(stack.url, chat_session_id, "What are these?", files=files)
    # THEN the answer reads as ever, the provider got both images, and the message is stored with them
    assert read["errors"] == []
    assert last_record(stack, model).images == [("image/png", image) for image in images]
    user, _ = messages_of(client, chat_session_id)
    assert (user["content"], [a["attachmentId"] for a in user["attachments"]]) == ("What are these?", ids)


@pytest.mark.parametrize(("part", "detail"), [
    ({"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBORw0KGgo="}, "attachment:"),
    ({"type": "file", "mediaType": "image/png", "url": "https://images.example/cat.png"}, "attachment:"),
    ({"type": "file", "mediaType": "application/pdf", "url": "attachment:01HZY00000000000000000ATT1"}, "image"),
])
def test_a_file_part_that_is_no_uploaded_image_is_refused_and_writes_nothing(client, dynamodb, stack, part, detail):
    chat_session_id = new_session(client)
    before, calls = count_items(dynamodb), len(stack.provider.records)
    body = ui_body(chat_session_id, ("m1", "user", "look"))
    body["messages"][-1]["parts"].insert(0, part)

    response = client.post("/chat/stream", params={"protocol": "ai-sdk"}, json=body)

    assert response.status_code == 422 and detail in response.json()["error"]["message"]
    assert (count_items(dynamodb), len(stack.provider.records)) == (before, calls)


def test_an_unknown_protocol_is_refused(client: httpx.Client):
    response = client.post("/chat/stream", params={"protocol": "ai-sdk-v9"}, json={})
    assert response.status_code == 422 and "protocol" in response.json()["error"]["message"]
