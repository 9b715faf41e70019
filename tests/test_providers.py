"""Every provider through the relay over real loopback HTTP, against the simulated server in its wire format:
a normal answer with usage and finish reason, HTTP errors, an error after HTTP 200, and a stream cut short."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from devtools.servers import UvicornThread
from devtools.simulated_provider import answer_tokens
from relay.config import Settings
from relay.errors import ProviderError
from relay.providers.base import ChatMessage, ChatRequest
from relay.providers.keys import StaticKey
from relay.providers.openai import OpenAIChatCompletions
from relay.providers.registry import ProviderRegistry
from relay.sse import MAX_LINE_BYTES
from tests.helpers import app_client, emf_lines, messages_of, stream_chat

FINISH_REASONS = {"openai": "stop", "openai-responses": "stop", "anthropic": "end_turn", "gemini": "STOP",
                  "azure-openai": "stop", "bedrock": "end_turn"}
PROVIDERS = sorted(FINISH_REASONS)


def session_for(client: httpx.Client, provider: str, model: str) -> str:
    response = client.post("/sessions", json={"provider": provider, "model": model})
    assert response.status_code == 201, response.text
    return str(response.json()["chatSessionId"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_normal_answer_streams_with_usage_and_finish_reason_into_store_and_metrics(client, capsys, caplog, provider):
    # SSE-like text and non-ASCII in the answer, through each wire format; fault_at makes the model unique per provider
    model = f"sim:first_token_ms=5,tokens_per_second=0,tokens=25,words=tricky,fault_at={len(provider)}"
    chat_session_id = session_for(client, provider, model)
    capsys.readouterr()
    received = stream_chat(client, chat_session_id, "Hello there")

    assert received.tokens == answer_tokens(25, "tricky")
    done = received.one("done")
    assert done["finishReason"] == FINISH_REASONS[provider]
    assert done["usage"] == {"inputTokens": 2, "outputTokens": 25}
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("complete", "".join(answer_tokens(25, "tricky")))
    assert ai["metadata"]["usage"] == {"inputTokens": 2, "outputTokens": 25}
    assert ai["metadata"]["finishReason"] == FINISH_REASONS[provider]
    [blob] = [b for b in emf_lines(capsys.readouterr().out) if b.get("model") == model]
    assert (blob["provider"], blob["InputTokens"], blob["OutputTokens"]) == (provider, [2.0], [25.0])
    [ended] = [r for r in caplog.records if r.getMessage() == "stream ended" and r.chat_session_id == chat_session_id]
    assert 0 < ended.provider_first_byte_ms <= ended.ttft_ms
    # botocore (Bedrock) does not tell connecting apart; the others' clients are pooled and reused
    assert ended.provider_connect_ms is None if provider == "bedrock" else ended.provider_connect_ms >= 0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("fault", "code"), [("http_401", "provider_auth"), ("http_429", "provider_rate_limited"),
                                             ("http_500", "provider_unavailable")])
def test_http_error_before_streaming_gets_its_stable_code(client, provider, fault, code):
    chat_session_id = session_for(client, provider, f"sim:fault={fault}")
    received = stream_chat(client, chat_session_id)
    error = received.one("error")
    assert error["code"] == code
    assert provider in error["message"]
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["metadata"]["error"]["code"]) == ("error", code)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_after_http_200_is_provider_error_with_the_text_so_far(client, provider):
    model = "sim:first_token_ms=5,tokens_per_second=0,fault=error_after,fault_at=3"
    chat_session_id = session_for(client, provider, model)
    received = stream_chat(client, chat_session_id)
    assert received.tokens == answer_tokens(3)
    assert received.one("error")["code"] == "provider_error"
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("error", "".join(answer_tokens(3)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_cut_before_its_terminal_event_is_stored_incomplete(client, provider):
    model = "sim:first_token_ms=5,tokens_per_second=0,fault=drop_after,fault_at=4"
    chat_session_id = session_for(client, provider, model)
    received = stream_chat(client, chat_session_id)
    assert received.tokens == answer_tokens(4)
    assert received.one("error")["code"] == "provider_incomplete"
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("incomplete", "".join(answer_tokens(4)))


@pytest.mark.parametrize(("provider", "fault"), [(provider, "endless_line") for provider in PROVIDERS]
                         + [("openai", "endless_event"), ("anthropic", "endless_event")])
def test_a_line_or_event_that_never_ends_fails_the_turn_with_the_text_so_far_and_bounded_reading(
        stack, client, provider, fault):
    # GIVEN a provider that, after 3 tokens, sends a line (or an event) that never ends
    model = f"sim:first_token_ms=5,tokens_per_second=0,fault={fault},fault_at=3"
    chat_session_id = session_for(client, provider, model)
    # WHEN the relay streams it
    received = stream_chat(client, chat_session_id)
    # THEN the client gets the text so far and a terminal provider_error, and the answer is stored with them
    assert received.tokens == answer_tokens(3)
    error = received.one("error")
    assert error["code"] == "provider_error" and provider in error["message"]
    _, ai = messages_of(client, chat_session_id)
    assert (ai["status"], ai["content"]) == ("error", "".join(answer_tokens(3)))
    assert ai["metadata"]["error"]["code"] == "provider_error"
    # AND the relay stopped reading soon after its limit (the rest is what loopback's socket buffers took)
    record = [record for record in stack.provider.records if record.model == model][-1]
    assert record.endless_bytes_sent < MAX_LINE_BYTES + socket_buffers_bytes()


def socket_buffers_bytes() -> int:
    """The most a TCP connection's two socket buffers may hold here: Linux grows a slow reader's receive buffer up to
    tcp_rmem's maximum (32 MiB on this machine), the sender's up to tcp_wmem's."""
    try:
        return sum(int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2]) for name in ("tcp_rmem", "tcp_wmem"))
    except (OSError, IndexError, ValueError):
        return 16 * 1024 * 1024


def test_azure_classic_deployment_url_with_api_version(stack):
    async def run() -> list:
        async with httpx.AsyncClient() as http:
            provider = OpenAIChatCompletions(http, name="azure-openai", base_url=stack.provider_server.url,
                                             key=StaticKey("AZURE_OPENAI_API_KEY", "k"),
                                             azure_api_version="2024-10-21")
            request = ChatRequest("sim:first_token_ms=0,tokens_per_second=0,tokens=6", [ChatMessage("user", "hi")])
            return [event async for batch in provider.stream(request) for event in batch]

    events = asyncio.run(run())
    assert "".join(e.text for e in events if hasattr(e, "text")) == "".join(answer_tokens(6))
    assert stack.provider.records[-1].format == "azure"


def test_the_exchange_times_opening_a_connection_and_the_first_byte_and_a_pooled_connection_costs_none(stack):
    async def run() -> list[tuple[float, float | None]]:
        async with httpx.AsyncClient() as http:
            provider = OpenAIChatCompletions(http, name="openai", base_url=stack.provider_server.url + "/v1",
                                             key=StaticKey("OPENAI_API_KEY", "k"))
            times = []
            for _ in range(2):
                request = ChatRequest("sim:first_token_ms=0,tokens_per_second=0,tokens=3", [ChatMessage("user", "hi")])
                async for _batch in provider.stream(request):
                    pass
                times.append((request.exchange.connect_seconds, request.exchange.first_byte_seconds))
            return times

    (connect, first_byte), (pooled_connect, pooled_first_byte) = asyncio.run(run())
    assert 0 < connect <= first_byte
    assert pooled_connect == 0 and pooled_first_byte > 0


@pytest.mark.parametrize(
    ("provider", "variable"),
    [("openai", "OPENAI_API_KEY"), ("openai-responses", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
     ("gemini", "GEMINI_API_KEY"), ("azure-openai", "AZURE_OPENAI_ENDPOINT")],
)
def test_provider_without_its_key_fails_naming_the_variable(provider, variable):
    async def run() -> ProviderError:
        async with httpx.AsyncClient() as http:
            registry = ProviderRegistry(Settings(), http)
            with pytest.raises(ProviderError) as caught:
                async for _ in registry.get(provider).stream(ChatRequest("m", [ChatMessage("user", "hi")])):
                    pass  # pragma: no cover - it fails before the first batch
            return caught.value

    error = asyncio.run(run())
    assert error.code == "provider_auth"
    assert variable in error.message


def test_providers_lists_only_configured_providers_with_their_models():
    async def run(settings: Settings) -> list:
        async with httpx.AsyncClient() as http:
            return await ProviderRegistry(settings, http).configured()

    assert asyncio.run(run(Settings())) == []
    listed = asyncio.run(run(Settings(anthropic_api_key="k", models={"anthropic": ["claude-x"], "bedrock": ["b"]})))
    assert listed == [{"name": "anthropic", "models": ["claude-x"]}, {"name": "bedrock", "models": ["b"]}]


def test_providers_route_lists_every_simulated_provider_in_the_local_run(client):
    providers = client.get("/providers").json()["providers"]
    assert {p["name"] for p in providers} == set(PROVIDERS) | {"simulated"}
    assert all("*" not in p["models"] and p["models"] for p in providers)  # "*" allows, it is no model to pick


def test_a_stream_the_parser_fails_is_closed_at_once_not_left_to_the_garbage_collector():
    # GIVEN a provider stream whose second batch holds an error event
    from relay.providers.openai import ChunkParser
    from relay.providers.streaming import parsed
    from relay.sse import ServerSentEvent

    closed: list[bool] = []

    async def batches():
        try:
            yield [ServerSentEvent(data='{"choices":[{"index":0,"delta":{"content":"Hi"}}]}')]
            yield [ServerSentEvent(data='{"error":{"message":"overloaded","type":"server_error"}}')]
            yield [ServerSentEvent(data="[DONE]")]
        finally:
            closed.append(True)  # where post_sse closes its HTTP response

    async def read() -> tuple[list[str], list[bool]]:
        texts = []
        with pytest.raises(ProviderError):
            async for batch in parsed(batches(), ChunkParser("openai")):
                texts += [event.text for event in batch]
        return texts, list(closed)  # before anything else runs on the loop

    # WHEN the parser raises THEN the text before it arrived, and the stream is already closed
    assert asyncio.run(read()) == (["Hi"], [True])


def test_a_model_outside_the_listed_ones_is_other_in_metrics_unless_every_model_may_be_its_own():
    listed = ProviderRegistry(Settings(models={"openai": ["gpt-4o-mini"]}), httpx.AsyncClient())
    assert listed.metric_model("openai", "gpt-4o-mini") == "gpt-4o-mini"
    assert listed.metric_model("openai", "any-name-a-client-made-up") == "other"
    assert listed.metric_model("gemini", "gpt-4o-mini") == "other"
    open_ended = ProviderRegistry(Settings(models={"openai": []}, metrics_any_model=True), httpx.AsyncClient())
    assert open_ended.metric_model("openai", "any-name-a-client-made-up") == "any-name-a-client-made-up"
    assert Settings.from_environment({"METRICS_MODEL_DIMENSION": "any"}).metrics_any_model
    assert not Settings.from_environment({}).metrics_any_model


@pytest.mark.parametrize(("provider", "model", "takes"), [
    ("openai", "gpt-4o-mini", True), ("openai", "gpt-4.1", True), ("openai", "gpt-4-turbo", True),
    ("openai", "o4-mini", True), ("openai", "gpt-4", False), ("openai", "gpt-4-0613", False),
    ("openai", "gpt-3.5-turbo", False), ("openai", "o3-mini", False), ("openai", "gpt-oss-120b", False),
    ("openai-responses", "gpt-5", True), ("openai-responses", "o1-mini", False),
    ("anthropic", "claude-sonnet-4-5", True), ("anthropic", "claude-3-haiku-20240307", True),
    ("anthropic", "claude-3-5-haiku-latest", False), ("anthropic", "claude-2.1", False),
    ("gemini", "gemini-2.5-flash", True), ("gemini", "gemini-1.0-pro", False),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", True),
    ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", True),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", False),
    ("bedrock", "us.amazon.nova-pro-v1:0", True), ("bedrock", "amazon.nova-micro-v1:0", False),
    ("bedrock", "meta.llama3-2-90b-instruct-v1:0", True), ("bedrock", "meta.llama3-1-70b-instruct-v1:0", False),
    ("bedrock", "mistral.mistral-large-2407-v1:0", False),
])
def test_each_provider_knows_which_of_its_models_take_images(provider, model, takes):
    async def ask() -> bool:
        async with httpx.AsyncClient() as http:
            return ProviderRegistry(Settings(), http).takes_images(provider, model)

    assert asyncio.run(ask()) is takes


def test_image_models_and_text_only_models_have_the_last_word_text_only_first():
    settings = Settings.from_environment({"IMAGE_MODELS": "bedrock/mistral.*, openai/gpt-3.5-turbo",
                                          "TEXT_ONLY_MODELS": "openai/gpt-4o*,bedrock/mistral.mistral-small*"})
    assert settings.takes_images("bedrock", "mistral.mistral-large-2407-v1:0", by_default=False)
    assert settings.takes_images("openai", "gpt-3.5-turbo", by_default=False)
    assert not settings.takes_images("openai", "gpt-3.5-turbo-0125", by_default=False)  # no "*": that name only
    assert not settings.takes_images("openai", "gpt-4o-mini", by_default=True)
    assert not settings.takes_images("bedrock", "mistral.mistral-small-2402-v1:0", by_default=False)


@pytest.mark.parametrize("entry", ["gpt-4o", "nobody/gpt-4o", "openai/", "openai"])
def test_an_image_models_entry_that_names_no_provider_and_model_stops_the_start(entry):
    with pytest.raises(ValueError, match="IMAGE_MODELS"):
        Settings.from_environment({"IMAGE_MODELS": entry})


@contextmanager
def openai_compatible_server(*chunks: bytes) -> Iterator[str]:
    """The base URL of an OpenAI-compatible server that streams these bytes as its answer to any chat request."""
    async def completions(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
        return StreamingResponse(body(), media_type="text/event-stream")

    server = UvicornThread(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])).start()
    try:
        yield server.url + "/v1"
    finally:
        server.stop()


def test_an_emoji_split_between_two_deltas_streams_and_is_stored_whole(dynamodb):
    # GIVEN a server that sends an emoji's UTF-16 halves in two deltas (valid JSON, as a UTF-16 server may cut text)
    chunks = [b'data: {"choices":[{"index":0,"delta":{"content":"ok \\ud83d"}}]}\n\n',
              b'data: {"choices":[{"index":0,"delta":{"content":"\\ude00 end"},"finish_reason":"stop"}]}\n\n',
              b"data: [DONE]\n\n"]
    with openai_compatible_server(*chunks) as base_url, \
            app_client(dynamodb, openai_api_key="key", openai_base_url=base_url) as client:
        chat_session_id = session_for(client, "openai", "gpt-4o-mini")
        # WHEN the relay streams it THEN the body ends whole (a cut would raise here), the emoji in one piece
        received = stream_chat(client, chat_session_id)
        assert "".join(received.tokens) == "ok \U0001f600 end" and received.one("done")
        # AND the answer is stored as it was streamed
        _, ai = messages_of(client, chat_session_id)
        assert (ai["status"], ai["content"]) == ("complete", "ok \U0001f600 end")


def test_an_error_whose_message_holds_half_a_character_still_ends_the_stream_and_is_stored(dynamodb):
    # GIVEN a server that refuses the request with a message holding a lone UTF-16 surrogate (valid JSON)
    async def refuse(request: Request) -> Response:
        return Response(b'{"error": {"message": "bad \\ud800 request"}}', status_code=400,
                        media_type="application/json")

    server = UvicornThread(Starlette(routes=[Route("/v1/chat/completions", refuse, methods=["POST"])])).start()
    try:
        with app_client(dynamodb, openai_api_key="key", openai_base_url=server.url + "/v1") as client:
            chat_session_id = session_for(client, "openai", "gpt-4o-mini")
            # WHEN the relay streams it THEN the body ends whole with the error, its message readable
            error = stream_chat(client, chat_session_id).one("error")
            assert error["code"] == "provider_bad_request" and "bad \ufffd request" in error["message"]
            # AND the answer is stored with that error
            _, ai = messages_of(client, chat_session_id)
            assert (ai["status"], ai["metadata"]["error"]["code"]) == ("error", "provider_bad_request")
    finally:
        server.stop()


def test_usage_no_count_can_be_fails_the_turn_with_provider_error_and_the_stream_still_ends_whole(dynamodb):
    # GIVEN an OpenAI-compatible server whose usage chunk counts 10**400 output tokens (JSON allows it; no float
    # holds it, and the tokens per second divide by it)
    chunks = [b'data: {"choices":[{"index":0,"delta":{"content":"so far"},"finish_reason":"stop"}]}\n\n',
              b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1' + b"0" * 400 + b'}}\n\n',
              b"data: [DONE]\n\n"]
    with openai_compatible_server(*chunks) as base_url, \
            app_client(dynamodb, openai_api_key="key", openai_base_url=base_url) as client:
        chat_session_id = session_for(client, "openai", "gpt-4o-mini")
        # WHEN the relay streams it THEN the body ends whole (a cut would raise here), with provider_error
        received = stream_chat(client, chat_session_id)
        assert received.tokens == ["so far"] and received.one("error")["code"] == "provider_error"
        # AND the answer is stored with the text so far
        _, ai = messages_of(client, chat_session_id)
        assert (ai["status"], ai["content"]) == ("error", "so far")
