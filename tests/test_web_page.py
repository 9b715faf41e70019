"""The chat page (web/) in a real browser: Debian's Chromium driven by Playwright, against the real local stack.

Chromium comes from the system (``apt-get install chromium``; Playwright's own browser download does not work on
these machines). Without it these tests are skipped, unless ``REQUIRE_BROWSER=1`` (CI sets it) makes that a
failure. A failing test leaves a screenshot in ``.local/screenshots/`` (the ``browser`` and ``page`` fixtures are
in conftest.py, shared with test_web_safety.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from devtools.simulated_provider import answer_tokens, reasoning_tokens
from tests.conftest import deploy_page, new_session, relay_server, static_server
from tests.outage import FaultyProxy
from tests.test_turn import messages_of, stream_chat

LAST_ANSWER = ".message.ai >> nth=-1"


def open_chat(page: Any, base_url: str, model: str, query: str = "") -> None:
    page.goto(f"{base_url}/{query}")
    page.wait_for_selector("#provider option[value=simulated]", state="attached")
    page.select_option("#provider", "simulated")
    page.fill("#model", model)
    page.dispatch_event("#model", "change")


def send(page: Any, text: str) -> None:
    page.fill("#content", text)
    page.press("#content", "Enter")


def answer(page: Any) -> dict[str, Any]:
    return page.eval_on_selector(LAST_ANSWER, """(element) => ({
        status: element.dataset.status, messageId: element.dataset.messageId ?? null,
        text: element.querySelector('.content').textContent, meta: element.querySelector('.meta').innerText,
        html: element.querySelector('.content').innerHTML, renders: Number(element.dataset.renders)})""")


def watch_until(page: Any, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> list[dict[str, Any]]:
    """Samples of the last answer every 50 ms until ``done`` holds for one."""
    page.wait_for_selector(LAST_ANSWER)
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(answer(page))
        if done(samples[-1]):
            return samples
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out; last state: {samples[-1]}")


def words(text: str) -> str:
    return " ".join(text.split())


def session_of(page: Any) -> str:
    return str(page.evaluate("new URLSearchParams(location.hash.slice(1)).get('session')"))


def test_the_answer_grows_on_screen_and_ends_as_the_stored_message(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=300,tokens_per_second=15,tokens=30")

    send(page, "Hello, page")
    samples = watch_until(page, lambda state: state["status"] == "complete")

    assert samples[0]["status"] == "pending"  # the spinner, before the first token
    growing = [len(state["text"]) for state in samples if state["status"] == "streaming"]
    assert len(set(growing)) >= 3, "the text should grow on screen several times before the done state"
    assert growing == sorted(growing)
    final = samples[-1]
    user, ai = messages_of(client, session_of(page))
    assert user["content"] == "Hello, page"
    assert (ai["messageId"], ai["status"]) == (final["messageId"], "complete")
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(30)))
    assert "tokens/s" in final["meta"]


def test_rendering_is_throttled_to_about_ten_updates_a_second(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=200,tokens=300")

    send(page, "a fast answer")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]

    assert words(final["text"]) == words("".join(answer_tokens(300)))
    assert final["renders"] < 300 / 5, f"{final['renders']} renders for 300 tokens in about 1.5 s"


def test_markdown_is_rendered_and_what_could_run_is_removed(page, stack):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=0,echo=1")

    send(page, "Some **bold** and `code`\n\n<img src=x onerror=\"document.title='owned'\"> <script>alert(1)</script>")
    final = watch_until(page, lambda state: state["status"] == "complete")[-1]

    assert "<strong>bold</strong>" in final["html"] and "<code>code</code>" in final["html"]
    assert "onerror" not in final["html"] and "<script" not in final["html"]
    assert page.title() != "owned"


def test_a_provider_error_shows_the_error_state_with_its_message(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=20,fault=error_after,fault_at=4")

    send(page, "this will fail")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]

    assert final["status"] == "error"
    assert "provider_error" in final["meta"]
    _, ai = messages_of(client, session_of(page))
    assert ai["status"] == "error"
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(4)))


def test_stop_ends_the_answer_as_interrupted_with_the_text_so_far(page, stack, client):
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=20,tokens=400")

    send(page, "a long one")
    watch_until(page, lambda state: len(state["text"]) > 20)
    page.click("#stop")
    final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]

    assert final["status"] == "interrupted"
    _, ai = messages_of(client, session_of(page))
    assert ai["status"] == "interrupted"
    assert words(final["text"]) == words(ai["content"])
    assert len(ai["content"]) < len("".join(answer_tokens(400)))


def test_a_connection_cut_mid_answer_resumes_to_the_full_text(page, stack, client):
    proxy = FaultyProxy(stack.url)
    resumed: list[str] = []
    page.on("request", lambda request: resumed.append(request.url) if request.url.endswith("/stream") else None)
    try:
        open_chat(page, proxy.url, "sim:first_token_ms=0,tokens_per_second=20,tokens=60")
        send(page, "keep going")
        before = watch_until(page, lambda state: len(state["text"]) > 30)[-1]
        proxy.cut()
        final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    finally:
        proxy.close()

    assert resumed, "the page should have asked to resume the answer"
    assert final["status"] == "complete"
    _, ai = messages_of(client, session_of(page))
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(60)))
    assert len(final["text"]) > len(before["text"])


def test_reloading_the_page_shows_the_chat_history_with_each_state(page, stack, client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    client.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "first question"})

    page.goto(f"{stack.url}/#session={chat_session_id}")
    page.wait_for_selector(".message.ai")

    shown = page.eval_on_selector_all(".message", """(elements) => elements.map((element) => ({
        role: element.classList.contains('user') ? 'user' : 'ai', status: element.dataset.status,
        text: element.querySelector('.content').textContent}))""")
    stored = messages_of(client, chat_session_id)
    assert [(m["role"], m["status"], words(m["text"])) for m in shown] == [
        (m["role"], m["status"], words(m["content"])) for m in stored]


def test_the_page_works_as_plain_static_files_on_another_origin(page, stack, dynamodb, client, tmp_path):
    # GIVEN a relay, and a copy of web/ set up for it as the README says (relay-url, connect-src), served by a plain
    # static file server on another origin that the relay allows (CORS)
    with static_server(tmp_path) as origin, relay_server(dynamodb, cors_allow_origins=(origin,)) as relay_url:
        deploy_page(tmp_path, connect=(relay_url,), relay_url=relay_url)
        # WHEN the page is opened
        open_chat(page, origin, "sim:first_token_ms=0,tokens_per_second=50,tokens=20")
        send(page, "from another origin")
        final = watch_until(page, lambda state: state["status"] not in ("pending", "streaming"))[-1]
    # THEN it streams through CORS like the local page does
    assert final["status"] == "complete"
    _, ai = messages_of(client, session_of(page))
    assert words(final["text"]) == words(ai["content"]) == words("".join(answer_tokens(20)))


def thinking(page: Any) -> dict[str, Any] | None:
    return page.eval_on_selector(LAST_ANSWER, """(element) => {
        const block = element.querySelector(':scope > details.thinking');
        return block && {open: block.open, state: block.dataset.state,
                         summary: block.querySelector('summary').textContent,
                         text: block.querySelector('.reasoning').textContent,
                         above: block.nextElementSibling === element.querySelector('.content'),
                         answer: element.querySelector('.content').textContent};
    }""")


def test_the_reasoning_streams_into_an_open_thinking_block_above_the_answer_then_folds_away(page, stack, client):
    # GIVEN a model that reasons for about a second before it answers
    open_chat(page, stack.url, "sim:first_token_ms=0,tokens_per_second=15,tokens=12,reasoning=15")
    # WHEN a message is sent
    send(page, "think first")
    page.wait_for_selector(f"{LAST_ANSWER} >> details.thinking")
    samples = []
    deadline = time.monotonic() + 20
    while (state := answer(page))["status"] in ("pending", "streaming") and time.monotonic() < deadline:
        samples.append(thinking(page))
        page.wait_for_timeout(50)
    final = thinking(page)
    assert state["status"] == "complete"
    # THEN the Thinking block grew, open, above an answer that had not begun
    reasoning = [sample for sample in samples if sample and not sample["answer"]]
    assert len({len(sample["text"]) for sample in reasoning}) >= 3, reasoning
    assert all(sample["open"] and sample["state"] == "streaming" and sample["above"] for sample in reasoning)
    assert reasoning[0]["summary"] == "Thinking"
    # AND once the answer came it was folded away, holding the whole reasoning as stored
    _, ai = messages_of(client, session_of(page))
    assert (final["open"], final["state"], final["text"]) == (False, "done", ai["reasoning"])
    assert ai["reasoning"] == "".join(reasoning_tokens(15))
    assert words(state["text"]) == words(ai["content"])
    # AND a click opens it again
    page.click(f"{LAST_ANSWER} >> details.thinking > summary")
    assert thinking(page)["open"] is True


def test_a_reloaded_answer_shows_its_stored_reasoning_folded_and_a_plain_answer_none(page, stack, client):
    chat_session_id = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5,reasoning=6")
    stream_chat(client, chat_session_id, "with reasoning")
    page.goto(f"{stack.url}/#session={chat_session_id}")
    page.wait_for_selector(".message.ai >> details.thinking")
    shown = thinking(page)
    assert (shown["open"], shown["text"], shown["above"]) == (False, "".join(reasoning_tokens(6)), True)
    plain = new_session(client, "sim:first_token_ms=0,tokens_per_second=0,tokens=5")
    stream_chat(client, plain, "without")
    page.goto(f"{stack.url}/#session={plain}")
    page.reload()
    page.wait_for_selector(".message.ai")
    assert thinking(page) is None
