"""Image attachments over the real local stack: a presigned upload to moto's S3 (a real PUT), then a chat turn that
names it, checked and read by the relay and sent to the simulated provider in each format's own image parts; and
what is refused (another user's image, an image over its cap, a PDF named .png, a model that takes no images), with
nothing stored and no provider asked. The module's I/O-free parts (sniffing, the history's budget) come first."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from httpx_sse import connect_sse

from devtools.local_run import ATTACHMENTS_BUCKET
from devtools.simulated_provider import answer_tokens
from relay import config
from relay.attachments import AttachmentStore, earlier_attachments, sniff_media_type
from relay.records import Attachment, StoredMessage
from tests.helpers import Received, app_client, count_items, last_record, messages_of, png, upload_image

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
QUICK = "sim:first_token_ms=0,tokens_per_second=0,tokens=5"
# Every wire format, each with a model its provider takes images for (the local run marks the simulated Bedrock's).
PROVIDERS = ["openai", "openai-responses", "anthropic", "gemini", "azure-openai", "bedrock"]


def chat(client: httpx.Client, chat_session_id: str, attachments: list[str], content: str | None = "What is this?",
         **extra: Any) -> Received | httpx.Response:
    """A chat request naming images: the events when it streams, the response when it is refused."""
    body = {"chatSessionId": chat_session_id, "attachments": attachments, **extra}
    if content is not None:
        body["content"] = content
    received = Received()
    with connect_sse(client, "POST", "/chat/stream", json=body) as source:
        if source.response.status_code != 200:
            source.response.read()
            return source.response
        for event in source.iter_sse():
            received.add(event)
    return received


def refusal(response: Received | httpx.Response) -> tuple[int, str]:
    assert isinstance(response, httpx.Response), "the request was answered, not refused"
    return response.status_code, response.json()["error"]["code"]


def session(client: httpx.Client, provider: str = "simulated", model: str = QUICK) -> str:
    created = client.post("/sessions", json={"provider": provider, "model": model})
    assert created.status_code == 201, created.text
    return str(created.json()["chatSessionId"])


def objects_under(stack: Any, chat_session_id: str) -> list[str]:
    listed = stack.s3_client().list_objects_v2(Bucket=ATTACHMENTS_BUCKET, Prefix=f"{chat_session_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


# Sniffing and the budget, on their own.

@pytest.mark.parametrize(("data", "media_type"), [(png(), "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"),
                                                  (b"GIF87a" + GIF[6:], "image/gif"), (WEBP, "image/webp")])
def test_each_image_type_is_told_by_its_first_bytes(data, media_type):
    assert sniff_media_type(data) == media_type


@pytest.mark.parametrize("data", [PDF, b"", b"\x89PNG", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg xmlns=''/>",
                                  b"BM6\x00\x00\x00", b"xxxxxxxxWEBP"])
def test_anything_else_is_no_image_whatever_it_is_called(data):
    assert sniff_media_type(data) is None


def user_message(*sizes: int) -> StoredMessage:
    attachments = tuple(Attachment(f"A{index}{size}", "image/png", size) for index, size in enumerate(sizes))
    return StoredMessage(f"M{sizes}", "user", "look", "complete", "2026-01-01T00:00:00.000Z",
                         attachments=attachments)


def test_earlier_images_are_taken_newest_first_a_message_whole_until_one_does_not_fit():
    oldest, middle, answer, newest = user_message(10), user_message(20, 30), StoredMessage(
        "X", "ai", "an answer", "complete", "2026-01-01T00:00:00.000Z"), user_message(40)
    history = [oldest, middle, answer, newest]
    chosen = earlier_attachments(history, images=3, total_bytes=1_000)
    assert chosen == [*middle.attachments, *newest.attachments]  # in the conversation's order
    # the oldest would still fit by bytes, but not by count; and nothing older is taken past a message that failed
    assert earlier_attachments(history, images=10, total_bytes=65) == [*newest.attachments]
    assert earlier_attachments(history, images=0, total_bytes=1_000) == []


# Uploading.

def test_an_upload_url_takes_exactly_the_image_declared_with_a_real_put(client, stack):
    # GIVEN a session
    chat_session_id = session(client)
    image = png(4, 4)
    # WHEN the client asks for an upload of a PNG of its size
    created = client.post(f"/sessions/{chat_session_id}/attachments", json={"mediaType": "image/png",
                                                                            "size": len(image)})
    # THEN it gets an id, a short-lived PUT URL with its type and length signed into it, and the headers to send
    assert created.status_code == 201
    upload = created.json()
    assert set(upload) == {"attachmentId", "uploadUrl", "uploadHeaders", "expiresAt"}
    assert upload["uploadHeaders"] == {"Content-Type": "image/png"}
    query = parse_qs(urlsplit(upload["uploadUrl"]).query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]  # S3 refuses another type or size
    assert query["X-Amz-Expires"] == [str(config.UPLOAD_URL_SECONDS)]
    assert urlsplit(upload["uploadUrl"]).path == f"/{ATTACHMENTS_BUCKET}/{chat_session_id}/{upload['attachmentId']}"
    # AND a real PUT of the bytes to it lands in the bucket, under the session's prefix
    put = httpx.put(upload["uploadUrl"], content=image, headers=upload["uploadHeaders"])
    assert put.status_code == 200
    stored = stack.s3_client().get_object(Bucket=ATTACHMENTS_BUCKET, Key=f"{chat_session_id}/{upload['attachmentId']}")
    assert (stored["Body"].read(), stored["ContentType"]) == (image, "image/png")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_upload_and_view_urls_name_the_bucket_by_the_regional_origin_the_page_policy_lists(monkeypatch, region):
    # GIVEN the relay in a region, on AWS's own endpoints (signing needs no network)
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    bucket = ATTACHMENTS_BUCKET  # the local run's: the role check places every bucket the suite's calls name
    store = AttachmentStore(bucket)
    # WHEN it hands out an upload URL and a URL to show a stored image by
    upload = asyncio.run(store.upload("01HZY00000000000000000SESS", "image/png", 10))
    shown = asyncio.run(store.view_urls("01HZY00000000000000000SESS", [Attachment("A", "image/png", 10)]))["A"]
    # THEN both are at https://<AttachmentsBucketName>.s3.<region>.amazonaws.com, the origin the README has a
    # deployer add to the page's connect-src and img-src: us-east-1's global name would be blocked by that policy
    for url in (upload.url, shown):
        assert f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" == f"https://{bucket}.s3.{region}.amazonaws.com"


def test_the_bucket_lets_the_pages_origin_put_and_no_other(client, stack):
    # GIVEN an upload URL, and the page's origin (the local run serves the page itself)
    chat_session_id = session(client)
    url = client.post(f"/sessions/{chat_session_id}/attachments", json={"mediaType": "image/png",
                                                                        "size": 10}).json()["uploadUrl"]
    preflight = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    # WHEN a browser on the page asks whether it may PUT there THEN it may
    allowed = httpx.options(url, headers={"Origin": stack.url, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == stack.url
    # AND a page elsewhere may not
    assert httpx.options(url, headers={"Origin": "https://elsewhere.example", **preflight}).status_code == 403


@pytest.mark.parametrize(("body", "code"), [
    ({"mediaType": "application/pdf", "size": 10}, "validation_error"),
    ({"mediaType": "image/svg+xml", "size": 10}, "validation_error"),
    ({"size": 10}, "validation_error"),
    ({"mediaType": "image/png"}, "validation_error"),
    ({"mediaType": "image/png", "size": 0}, "validation_error"),
    ({"mediaType": "image/png", "size": True}, "validation_error"),
    ({"mediaType": "image/png", "size": 1.5}, "validation_error"),
    ({"mediaType": "image/png", "size": config.MAX_IMAGE_BYTES + 1}, "attachment_too_large"),
])
def test_an_upload_of_something_else_than_an_image_within_its_cap_is_refused_422(client, stack, body, code):
    chat_session_id = session(client)
    response = client.post(f"/sessions/{chat_session_id}/attachments", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)
    assert objects_under(stack, chat_session_id) == []


# A turn with images, in every wire format.

@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_image_reaches_the_provider_in_its_own_form_and_is_stored_with_the_message(client, stack, provider):
    # GIVEN a session of this provider, and a PNG and a JPEG uploaded to it
    model = f"sim:first_token_ms=0,tokens_per_second=0,tokens=6,fault_at={len(provider) + 10}"  # unique
    chat_session_id = session(client, provider, model)
    image = png(2, 3)
    first, second = upload_image(client, chat_session_id, image), upload_image(client, chat_session_id, JPEG,
                                                                                 "image/jpeg")
    # WHEN the client sends a message that names them
    received = chat(client, chat_session_id, [first, second], "Describe both")
    # THEN the answer streams as ever
    assert isinstance(received, Received) and received.tokens == answer_tokens(6)
    # AND the provider got both images, in order, in its own image parts (the simulated server reads each format's
    # own shape, and refuses any other), and the text after them
    record = last_record(stack, model)
    assert record.images == [("image/png", image), ("image/jpeg", JPEG)]
    assert record.messages[-1]["content"] == "Describe both"
    # AND the user message keeps its images' ids, their types as their bytes show them, and their sizes
    user, _ = messages_of(client, chat_session_id)
    assert [{key: value for key, value in shown.items() if key != "url"} for shown in user["attachments"]] == [
        {"attachmentId": first, "mediaType": "image/png", "size": len(image)},
        {"attachmentId": second, "mediaType": "image/jpeg", "size": len(JPEG)}]


def test_a_message_of_images_alone_is_answered_and_stored_without_text(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=71"
    chat_session_id = session(client, "anthropic", model)  # Anthropic refuses an empty text block
    attachment = upload_image(client, chat_session_id, GIF, "image/gif")
    received = chat(client, chat_session_id, [attachment], content=None)
    assert isinstance(received, Received) and received.one("done")
    assert last_record(stack, model).images == [("image/gif", GIF)]
    user, _ = messages_of(client, chat_session_id)
    assert user["content"] == "" and user["attachments"][0]["attachmentId"] == attachment


def test_images_alone_leave_content_out_an_empty_one_is_refused_as_ever(client, dynamodb, stack):
    chat_session_id = session(client)
    attachment = upload_image(client, chat_session_id, png())
    before, calls = count_items(dynamodb), len(stack.provider.records)
    response = chat(client, chat_session_id, [attachment], content="")
    assert refusal(response) == (422, "validation_error")
    assert isinstance(response, httpx.Response) and response.json()["error"]["message"] == "content must not be empty"
    assert (count_items(dynamodb), len(stack.provider.records)) == (before, calls)


def test_an_image_declared_as_another_image_type_is_sent_as_what_its_bytes_are(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=72"
    chat_session_id = session(client, "gemini", model)
    attachment = upload_image(client, chat_session_id, WEBP, "image/png")  # a browser's guess from a name
    assert isinstance(chat(client, chat_session_id, [attachment]), Received)
    assert last_record(stack, model).images == [("image/webp", WEBP)]
    # AND a page that shows the history gets it by a short-lived URL, as what it is
    [shown] = messages_of(client, chat_session_id)[0]["attachments"]
    viewed = httpx.get(shown["url"])
    assert (viewed.status_code, viewed.content, viewed.headers["content-type"]) == (200, WEBP, "image/webp")
    assert parse_qs(urlsplit(shown["url"]).query)["X-Amz-Expires"] == [str(config.UPLOAD_URL_SECONDS)]


def test_earlier_images_go_with_later_messages_within_the_budget_oldest_dropped_first(dynamodb, stack):
    # GIVEN a relay whose provider requests carry at most 2 images
    with app_client(dynamodb, history_max_images=2) as client:
        model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=73"
        chat_session_id = session(client, "openai", model)
        images = [png(1, height) for height in (1, 2, 3)]
        # WHEN three messages each bring an image (and one message in between brings none)
        for index, image in enumerate(images):
            assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, image)],
                                   f"image {index}"), Received)
            if index == 1:
                assert isinstance(chat(client, chat_session_id, [], "and now?"), Received)
        # THEN each request carried the newest images that fit, the new message's first, in the conversation's order
        carried = [record.images for record in stack.provider.records if record.model == model]
        assert carried == [[("image/png", images[0])],
                           [("image/png", images[0]), ("image/png", images[1])],
                           [("image/png", images[0]), ("image/png", images[1])],
                           [("image/png", images[1]), ("image/png", images[2])]]
        # AND each image went with its own message
        last = [record for record in stack.provider.records if record.model == model][-1]
        assert [message["content"] for message in last.messages if message["role"] == "user"] == [
            "image 0", "image 1", "and now?", "image 2"]


@pytest.mark.parametrize("provider", ["anthropic", "bedrock", "gemini"])  # each refuses a user message of no text
def test_a_message_of_images_alone_sent_later_without_them_still_says_something(dynamodb, stack, provider):
    # GIVEN a relay whose provider requests carry one image, and a message of images alone
    with app_client(dynamodb, history_max_images=1) as client:
        model = f"sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at={len(provider) + 80}"
        chat_session_id = session(client, provider, model)
        assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, png(1, 1))],
                               content=None), Received)
        # WHEN the next message brings an image of its own, so the first one's is left out
        second = png(1, 2)
        assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, second)],
                               "and this one?"), Received)
        # THEN the first message still goes as text that says what it was, not as an empty one (which Anthropic,
        # Bedrock and Gemini answer with a 400, every turn of the conversation from then on)
        record = last_record(stack, model)
        assert record.images == [("image/png", second)]
        first, *_ = [message["content"] for message in record.messages if message["role"] == "user"]
        assert first == "[an image, not sent again]"


def test_a_regenerate_of_images_alone_that_are_gone_says_so_rather_than_nothing(client, stack):
    # GIVEN a message of images alone, whose image the bucket has since expired (its lifecycle rule)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=89"
    chat_session_id = session(client, "anthropic", model)
    attachment = upload_image(client, chat_session_id, GIF, "image/gif")
    assert isinstance(chat(client, chat_session_id, [attachment], content=None), Received)
    stack.s3_client().delete_object(Bucket=ATTACHMENTS_BUCKET, Key=f"{chat_session_id}/{attachment}")
    # WHEN its answer is asked for again THEN the provider is told there was an image, not sent an empty message
    with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                          "regenerate": True}) as source:
        assert [event.event for event in source.iter_sse()][-1] == "done"
    record = last_record(stack, model)
    assert (record.images, record.messages[-1]["content"]) == ([], "[an image, not sent again]")


def test_a_regenerate_sends_the_images_of_the_message_it_answers_again(client, stack):
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=74"
    chat_session_id = session(client, "bedrock", model)
    image = png(3, 1)
    assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, image)]), Received)
    with connect_sse(client, "POST", "/chat/stream", json={"chatSessionId": chat_session_id,
                                                          "regenerate": True}) as source:
        assert source.response.status_code == 200
        assert [event.event for event in source.iter_sse()][-1] == "done"
    assert [record.images for record in stack.provider.records if record.model == model] == [
        [("image/png", image)], [("image/png", image)]]


# Refused: nothing stored, no provider asked.

def test_a_pdf_named_png_is_refused_422_and_nothing_is_stored_or_sent(client, dynamodb, stack):
    # GIVEN a PDF uploaded as "image/png" (what a browser says of a file named report.png)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=75"
    chat_session_id = session(client, "openai", model)
    attachment = upload_image(client, chat_session_id, PDF, "image/png")
    before = count_items(dynamodb)
    # WHEN a message names it THEN it is refused for what its bytes are, and nothing is stored or sent
    assert refusal(chat(client, chat_session_id, [attachment])) == (422, "attachment_not_an_image")
    assert count_items(dynamodb) == before
    assert [record for record in stack.provider.records if record.model == model] == []


def test_an_image_uploaded_over_its_cap_is_refused_at_use(client, dynamodb, stack):
    # GIVEN bytes over the cap uploaded through a URL signed for fewer (S3 itself refuses that; moto signs nothing,
    # so the relay's own check on use is what is seen here)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=76"
    chat_session_id = session(client, "openai", model)
    oversized = upload_image(client, chat_session_id, png(extra=b"x" * config.MAX_IMAGE_BYTES), size=100)
    before = count_items(dynamodb)
    # WHEN a message names it THEN it is refused, and nothing is stored or sent
    assert refusal(chat(client, chat_session_id, [oversized])) == (422, "attachment_too_large")
    assert count_items(dynamodb) == before
    assert [record for record in stack.provider.records if record.model == model] == []


def test_images_over_a_messages_total_are_refused(client, stack):
    chat_session_id = session(client, "openai", "sim:fault_at=77")
    each = config.MAX_MESSAGE_IMAGE_BYTES // config.MAX_IMAGES_PER_MESSAGE + 1
    attachments = [upload_image(client, chat_session_id, png(extra=bytes(each))) for _ in range(4)]
    assert refusal(chat(client, chat_session_id, attachments)) == (422, "attachment_too_large")


def test_another_users_attachment_is_not_found_404_and_nothing_of_theirs_is_read(dynamodb, stack):
    with app_client(dynamodb, users_by_header=True) as client:
        alice, bob = {"x-test-user": "alice-attachments"}, {"x-test-user": "bob-attachments"}
        model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=78"
        # GIVEN Alice's session with her image, and Bob's session
        client.headers.update(alice)
        alices = session(client, "openai", model)
        hers = upload_image(client, alices, png())
        client.headers.update(bob)
        bobs = session(client, "openai", model)
        # WHEN Bob names her image in his session, or sends it to her session, or asks to upload into hers
        named = chat(client, bobs, [hers])
        into_hers = chat(client, alices, [hers])
        upload = client.post(f"/sessions/{alices}/attachments", json={"mediaType": "image/png", "size": 10})
        # THEN all three are not found, as for ids that do not exist, and no provider was asked
        assert refusal(named) == (404, "attachment_not_found")
        assert refusal(into_hers) == (404, "session_not_found")
        assert (upload.status_code, upload.json()["error"]["code"]) == (404, "session_not_found")
        assert [record for record in stack.provider.records if record.model == model] == []


def test_an_attachment_never_uploaded_or_unknown_is_not_found(client):
    chat_session_id = session(client)
    reserved = client.post(f"/sessions/{chat_session_id}/attachments", json={"mediaType": "image/png", "size": 9})
    assert refusal(chat(client, chat_session_id, [reserved.json()["attachmentId"]])) == (404, "attachment_not_found")
    assert refusal(chat(client, chat_session_id, ["not-an-id"])) == (404, "attachment_not_found")


@pytest.mark.parametrize(("model", "changes"), [
    ("gpt-3.5-turbo", {}),  # a model the provider's own list says takes none
    ("sim-text-only", {"text_only_models": ("openai/sim-text*",)}),  # one TEXT_ONLY_MODELS names
])
def test_a_model_that_takes_no_images_is_refused_422_before_any_provider_call(dynamodb, stack, model, changes):
    with app_client(dynamodb, **changes) as client:
        chat_session_id = session(client, "openai", model)
        calls = len(stack.provider.records)
        attachment = upload_image(client, chat_session_id, png())
        before = count_items(dynamodb)
        assert refusal(chat(client, chat_session_id, [attachment])) == (422, "images_not_supported")
        assert count_items(dynamodb) == before
        assert len(stack.provider.records) == calls
        # AND the same model still answers text
        assert isinstance(chat(client, chat_session_id, []), Received)


def test_image_models_lets_a_model_the_defaults_do_not_know_take_images(dynamodb, stack):
    model = "mistral.mistral-large-sim"  # a Bedrock id the defaults take as text-only
    with app_client(dynamodb, image_models=("bedrock/mistral.*",)) as client:
        chat_session_id = session(client, "bedrock", model)
        assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, png())]), Received)
    assert last_record(stack, model).images == [("image/png", png())]


@pytest.mark.parametrize(("extra", "attachments"), [
    ({}, "one"),
    ({}, [1]),
    ({}, ["01HZY00000000000000000ATT1"] * 2),
    ({}, [f"01HZY00000000000000000ATT{index}" for index in range(config.MAX_IMAGES_PER_MESSAGE + 1)]),
    ({"regenerate": True, "content": None}, ["01HZY00000000000000000ATT1"]),
])
def test_a_malformed_attachments_field_is_refused_422(client, dynamodb, extra, attachments):
    chat_session_id = session(client)
    before = count_items(dynamodb)
    body = {"chatSessionId": chat_session_id, "content": "hi", "attachments": attachments, **extra}
    response = client.post("/chat/stream", json={key: value for key, value in body.items() if value is not None})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert count_items(dynamodb) == before


def test_a_relay_without_a_bucket_refuses_images_clearly_and_sends_an_earlier_conversation_as_text(
        client, dynamodb, stack):
    # GIVEN a conversation whose first message had an image
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=3,fault_at=79"
    chat_session_id = session(client, "openai", model)
    assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, png())]), Received)
    # WHEN a relay with no bucket (ATTACHMENTS_BUCKET unset, or unset since) is asked for images
    with app_client(dynamodb, attachments_bucket=None) as bucketless:
        upload = bucketless.post(f"/sessions/{chat_session_id}/attachments", json={"mediaType": "image/png",
                                                                                   "size": 9})
        named = chat(bucketless, chat_session_id, ["01HZY00000000000000000ATT1"])
        # THEN it says it takes none; and the conversation goes on as text
        assert (upload.status_code, upload.json()["error"]["code"]) == (422, "attachments_not_configured")
        assert refusal(named) == (422, "attachments_not_configured")
        assert isinstance(chat(bucketless, chat_session_id, [], "and in words?"), Received)
    assert last_record(stack, model).images == []


# Erasing.

def test_erasing_a_conversation_deletes_its_images_those_never_sent_too(client, stack):
    # GIVEN a conversation with an image sent in a message, and one uploaded but never sent
    chat_session_id = session(client)
    assert isinstance(chat(client, chat_session_id, [upload_image(client, chat_session_id, png())]), Received)
    upload_image(client, chat_session_id, JPEG, "image/jpeg")
    other = session(client)
    kept = upload_image(client, other, png())
    assert len(objects_under(stack, chat_session_id)) == 2
    # WHEN it is erased THEN its images are gone with it, and another conversation's stay
    assert client.delete(f"/sessions/{chat_session_id}").status_code == 204
    assert objects_under(stack, chat_session_id) == []
    assert objects_under(stack, other) == [f"{other}/{kept}"]


def test_erasing_all_of_a_users_conversations_deletes_all_their_images(dynamodb, stack):
    with app_client(dynamodb, users_by_header=True) as client:
        client.headers["x-test-user"] = "erases-everything"
        sessions = [session(client) for _ in range(2)]
        for chat_session_id in sessions:
            upload_image(client, chat_session_id, png())
        assert client.delete("/sessions").status_code == 204
        assert [objects_under(stack, chat_session_id) for chat_session_id in sessions] == [[], []]


# In a browser.

def test_a_browser_on_the_page_uploads_with_the_client_module_and_the_image_reaches_the_provider(
        stack, client, page_without_csp):
    # GIVEN the page as the local run serves it, and a session (the page's Content-Security-Policy, which does not
    # name the bucket's origin yet, is set aside: this is the client module and the bucket's CORS in a real browser)
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=4,fault_at=91"
    chat_session_id = session(client, "openai", model)
    image = png(5, 5)
    page = page_without_csp
    page.goto(stack.url + "/")
    # WHEN the page's own code uploads a picked file with uploadAttachment and sends it with streamChat
    sent = page.evaluate("""async ([chatSessionId, bytes]) => {
        const relay = await import("/relay-client.js");
        const file = new File([new Uint8Array(bytes)], "holiday.png", { type: "image/png" });
        const uploaded = await relay.uploadAttachment({ url: location.origin, chatSessionId, file });
        const answer = await relay.streamChat({ url: location.origin, chatSessionId, content: "Where is this?",
                                                attachments: [uploaded.attachmentId] });
        return { uploaded, status: answer.status, text: answer.text };
    }""", [chat_session_id, list(image)])
    # THEN the PUT crossed to the bucket (a CORS preflight from the page's origin), and the image reached the provider
    assert sent["uploaded"]["mediaType"] == "image/png" and sent["uploaded"]["size"] == len(image)
    assert (sent["status"], sent["text"]) == ("complete", "".join(answer_tokens(4)))
    assert last_record(stack, model).images == [("image/png", image)]
