"""The composer's images (web/attachments.js and chat.js) in Chromium, against the real local stack and under the
page's own Content-Security-Policy: attached with the button, pasted or dropped, shown as thumbnails that can be
removed, uploaded to the local bucket with relay-client.js and sent with the message, so that the simulated
provider's request carries them in its own form; shown in the message, and again after a reload from the relay's
URLs; and a file the relay would refuse is refused on the page, with a clear message and no request at all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.simulated_provider import answer_tokens
from relay import config
from tests.helpers import last_record, messages_of, png
from tests.test_attachments import JPEG, PDF
from tests.test_web_page import accessibility_violations, open_chat, send, session_of, until_settled

ATTACHMENTS_JS = Path(__file__).resolve().parent.parent / "web" / "attachments.js"
QUICK = "sim:first_token_ms=0,tokens_per_second=0,tokens=4"

# Builds a DataTransfer of files in the page, as a paste or a drop hands them over. The page's policy forbids
# eval, so this is a function Playwright calls with its arguments, never a bare expression.
DISPATCH = """([selector, kind, files]) => {
    const transfer = new DataTransfer();
    for (const {name, type, bytes} of files) transfer.items.add(new File([new Uint8Array(bytes)], name, {type}));
    const target = document.querySelector(selector);
    const event = kind === "paste"
        ? new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true})
        : new DragEvent(kind, {dataTransfer: transfer, bubbles: true, cancelable: true});
    target.dispatchEvent(event);
}"""


def open_image_chat(page: Any, base_url: str, model: str) -> None:
    """open_chat, with the page's file choosers handed to the test from the start: Playwright starts intercepting
    them when a listener is first added, asynchronously, so a chooser opened right after the first listener is
    added can be missed."""
    page.on("filechooser", lambda chooser: None)
    open_chat(page, base_url, model)


def a_file(name: str, data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    return {"name": name, "type": media_type, "bytes": list(data)}


def pick_with_the_button(page: Any, *files: tuple[str, bytes, str]) -> None:
    """The attach button, reached and pressed with the keyboard, opens the file chooser; these files are picked."""
    page.focus("#attach")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files([{"name": name, "mimeType": media_type, "buffer": data}
                             for name, data, media_type in files])


def tray(page: Any) -> list[str]:
    """The thumbnails waiting in the composer, by their alt text, once they are shown."""
    return list(page.eval_on_selector_all("#tray img", "(images) => images.map((image) => image.alt)"))


def shown_images(page: Any, message: str = ".message.user >> nth=-1") -> list[dict[str, Any]]:
    """The images a message shows: where each comes from, and whether it loaded as a picture."""
    page.wait_for_function("""() => [...document.querySelectorAll('.message .images img')]
        .every((image) => image.complete)""")
    return list(page.eval_on_selector(message, """(element) => [...element.querySelectorAll('.images img')]
        .map((image) => ({src: image.src, alt: image.alt, width: image.naturalWidth}))"""))


def uploads_and_chats(page: Any) -> list[str]:
    """Records each request the page makes from now on to the relay's API or the bucket."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}")
            if re.search(r"/attachments|/chat/stream|X-Amz-", request.url) else None)
    return requests


def policy_violations(page: Any) -> list[str]:
    """Records each Content-Security-Policy violation the page reports from now on."""
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return violations


def test_an_image_attached_with_the_button_reaches_the_provider_and_shows_in_the_message_and_after_a_reload(
        page, stack, client):
    # GIVEN the page as the local run serves it, its policy and all, on a simulated model (OpenAI's wire format)
    violations = policy_violations(page)
    model = f"{QUICK},fault_at=201"  # unique, to find its request
    open_image_chat(page, stack.url, model)
    image = png(3, 2)
    # WHEN an image is picked with the attach button (by keyboard) and sent with a question
    pick_with_the_button(page, ("holiday.png", image, "image/png"))
    page.wait_for_selector("#tray img")
    assert tray(page) == ["holiday.png"]
    send(page, "Where is this?")
    until_settled(page, 1)
    # THEN the provider's request carried the image in its own form (an image_url part with a data URL, read back
    # by the simulated server) before the text, and the answer is the one it streamed
    record = last_record(stack, model)
    assert (record.format, record.images) == ("openai", [("image/png", image)])
    assert record.messages[-1]["content"] == "Where is this?"
    # AND the tray is empty again, and the message shows the image it carried
    assert tray(page) == []
    [sent] = shown_images(page)
    assert sent["src"].startswith("data:image/png;base64,") and sent["width"] == 3
    # AND the store has it with the message, and the answer the provider streamed
    user, ai = messages_of(client, session_of(page))
    assert [attachment["mediaType"] for attachment in user["attachments"]] == ["image/png"]
    assert (ai["status"], ai["content"]) == ("complete", "".join(answer_tokens(4)))
    # WHEN the page is reloaded THEN the message shows it again, from the relay's URL into the local bucket, which
    # the page's policy lets it load (and nothing was blocked along the way)
    page.reload()
    page.wait_for_selector(".message.user .images img")
    [again] = shown_images(page)
    assert again["src"].startswith(stack.dynamodb.url + "/") and again["width"] == 3
    assert violations == [] and page.is_hidden("#notice")


def test_regenerate_sends_the_messages_images_again(page, stack):
    # GIVEN an answered message that carried an image
    model = f"{QUICK},fault_at=204"
    open_image_chat(page, stack.url, model)
    image = png(2, 1)
    pick_with_the_button(page, ("chart.png", image, "image/png"))
    page.wait_for_selector("#tray img")
    send(page, "Explain this")
    until_settled(page, 1)
    first = last_record(stack, model)
    # WHEN its answer is regenerated
    page.click(".message.ai >> nth=-1 >> button.regenerate")
    page.wait_for_function("(count) => document.querySelectorAll('.message.ai').length === count", arg=2)
    until_settled(page, 2)
    # THEN the provider was asked again with the same image, which the relay took from the stored message
    again = last_record(stack, model)
    assert again is not first and again.images == first.images == [("image/png", image)]


def test_pasted_and_dropped_images_wait_as_thumbnails_that_can_be_removed_then_go_in_order(page, stack):
    # GIVEN a chat
    model = f"{QUICK},fault_at=202"
    open_image_chat(page, stack.url, model)
    first, second = png(1, 1), png(2, 2)
    # WHEN one image is pasted into the message field, a JPEG is dropped on the chat, and another PNG pasted
    page.evaluate(DISPATCH, ["#content", "paste", [a_file("", first)]])
    page.evaluate(DISPATCH, ["#thread", "drop", [a_file("photo.jpg", JPEG, "image/jpeg")]])
    page.evaluate(DISPATCH, ["#content", "paste", [a_file("second.png", second)]])
    page.wait_for_function("() => document.querySelectorAll('#tray img').length === 3")
    assert tray(page) == ["pasted image", "photo.jpg", "second.png"]
    # AND the JPEG is removed with its own labelled button, which hands the focus to the next one
    page.click("#tray button[aria-label='Remove photo.jpg']")
    assert tray(page) == ["pasted image", "second.png"]
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Remove second.png"
    # AND the images are sent alone, with no text
    page.click("#send")
    until_settled(page, 1)
    # THEN the provider got the two that were left, in order, and no text
    record = last_record(stack, model)
    assert record.images == [("image/png", first), ("image/png", second)]
    assert record.messages[-1]["content"] == ""
    assert len(shown_images(page)) == 2


def test_a_paste_of_text_stays_a_paste_of_text(page, stack):
    open_image_chat(page, stack.url, QUICK)
    page.focus("#content")
    page.evaluate("""() => {
        const transfer = new DataTransfer();
        transfer.setData("text/plain", "cells");
        transfer.items.add(new File([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10])], "cells.png",
                                    {type: "image/png"}));
        document.getElementById("content").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
    }""")
    assert tray(page) == [] and page.is_hidden("#tray")


@pytest.mark.parametrize(("name", "data", "media_type", "said"), [
    ("report.png", PDF, "image/png", "“report.png” is not a PNG, JPEG, WebP or GIF image"),
    ("notes.txt", b"just text", "text/plain", "“notes.txt” is not a PNG, JPEG, WebP or GIF image"),
    ("huge.png", png(extra=b"\0" * config.MAX_IMAGE_BYTES), "image/png", "an image can be at most 3.75 MB"),
])
def test_a_file_the_relay_would_refuse_shows_why_and_sends_nothing(page, stack, name, data, media_type, said):
    # GIVEN a chat, and every request the page makes from now on
    model = f"{QUICK},fault_at=203"
    open_image_chat(page, stack.url, model)
    requests = uploads_and_chats(page)
    calls = len(stack.provider.records)
    # WHEN the file is picked
    pick_with_the_button(page, (name, data, media_type))
    # THEN the page says why, by the file's name, and keeps nothing to send
    page.wait_for_selector("#tray-error", state="visible")
    assert said in page.inner_text("#tray-error")
    assert page.get_attribute("#tray-error", "role") == "alert"
    assert tray(page) == []
    # AND Send without text sends nothing at all: no upload, no message, no provider call
    page.click("#send")
    page.wait_for_timeout(300)  # not a timing assertion: time for a request to leave, were one sent
    assert requests == [] and len(stack.provider.records) == calls
    assert page.locator(".message").count() == 0


def test_more_images_than_a_message_takes_are_refused_by_name(page, stack):
    open_image_chat(page, stack.url, QUICK)
    files = [(f"{index}.png", png(1, index + 1), "image/png") for index in range(config.MAX_IMAGES_PER_MESSAGE + 1)]
    pick_with_the_button(page, *files)
    page.wait_for_selector("#tray-error", state="visible")
    assert tray(page) == [name for name, _, _ in files[:-1]]
    assert f"“{files[-1][0]}” was not added: a message can carry at most 4 images" in page.inner_text("#tray-error")


def test_a_model_that_takes_no_images_is_refused_by_the_relay_and_the_page_says_so(page, stack):
    # GIVEN a chat with a model the relay knows takes no images
    page.on("filechooser", lambda chooser: None)  # as open_image_chat does
    page.goto(f"{stack.url}/")
    page.wait_for_selector("#provider option[value=openai]", state="attached")
    page.select_option("#provider", "openai")
    page.fill("#model", "gpt-3.5-turbo")
    page.dispatch_event("#model", "change")
    calls = len(stack.provider.records)
    # WHEN an image is sent to it
    pick_with_the_button(page, ("chart.png", png(), "image/png"))
    page.wait_for_selector("#tray img")
    send(page, "What does this show?")
    # THEN the answer shows the relay's refusal, its code and message, and the provider was never asked
    until_settled(page, 1)
    failure = page.inner_text(".message.ai >> nth=-1")
    assert "images_not_supported" in failure and "takes no images" in failure
    assert len(stack.provider.records) == calls


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_with_images_waiting_refused_and_sent(browser, stack, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    try:
        open_image_chat(page, stack.url, QUICK)
        # GIVEN an image sent, one waiting in the composer, and a refusal showing
        pick_with_the_button(page, ("sent.png", png(2, 2), "image/png"))
        page.wait_for_selector("#tray img")
        send(page, "first")
        until_settled(page, 1)
        pick_with_the_button(page, ("waiting.png", png(), "image/png"), ("fake.png", PDF, "image/png"))
        page.wait_for_selector("#tray-error", state="visible")
        # THEN axe finds nothing serious
        assert accessibility_violations(page) == []
    finally:
        context.close()


def test_the_pages_caps_are_the_relays():
    source = ATTACHMENTS_JS.read_text()

    def constant(name: str) -> str:
        found = re.search(rf"export const {name} = (.+?);", source)
        assert found, name
        return found.group(1)

    assert int(constant("MAX_IMAGE_BYTES").replace("_", "")) == config.MAX_IMAGE_BYTES
    assert int(constant("MAX_IMAGES")) == config.MAX_IMAGES_PER_MESSAGE
    assert int(constant("MAX_MESSAGE_IMAGE_BYTES").replace("_", "")) == config.MAX_MESSAGE_IMAGE_BYTES
    assert tuple(re.findall(r'"(image/[a-z]+)"', constant("IMAGE_TYPES"))) == config.IMAGE_MEDIA_TYPES


def test_the_images_of_a_long_conversations_first_messages_load_with_it_while_their_urls_last(page, stack, client):
    # GIVEN a conversation whose first message carried an image, then long answers below it, so that the image
    # is far above what the thread shows once the page has opened it at its end
    model = "sim:first_token_ms=0,tokens_per_second=0,tokens=600,fault_at=204"
    chat_session_id = client.post("/sessions", json={"provider": "openai", "model": model}).json()["chatSessionId"]
    image = png(4, 3)
    upload = client.post(f"/sessions/{chat_session_id}/attachments", json={"mediaType": "image/png",
                                                                           "size": len(image)}).json()
    assert httpx.put(upload["uploadUrl"], content=image, headers=upload["uploadHeaders"]).status_code == 200
    for index in range(4):
        attachments = {"attachments": [upload["attachmentId"]]} if index == 0 else {}
        client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": f"{index}", **attachments})
    # WHEN the page opens it, and nobody scrolls
    requests = uploads_and_chats(page)
    page.goto(f"{stack.url}/#session={chat_session_id}")
    page.wait_for_selector(".message.user .images img")
    page.wait_for_load_state("networkidle")
    # THEN the image is fetched at once, while its URL (GET …/messages's, valid 5 minutes) is good: fetched only
    # when scrolled to, minutes later, it would be refused by S3 and show broken
    assert [request for request in requests if request.startswith(f"GET {stack.dynamodb.url}/")]
    assert page.eval_on_selector(".message.user .images img", "(image) => image.naturalWidth") == 4
