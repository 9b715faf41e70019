"""The providers a deployment knows, by name, built from its settings around one shared HTTP client; and which
models each may serve."""

from __future__ import annotations

import httpx

from relay import config
from relay.config import Settings
from relay.errors import ProviderError
from relay.providers.anthropic import AnthropicMessages
from relay.providers.base import ChatProvider, Unconfigured
from relay.providers.bedrock import BedrockConverseStream
from relay.providers.gemini import GeminiStreamGenerateContent
from relay.providers.keys import KeySource, StaticKey, key_source
from relay.providers.openai import OpenAIChatCompletions
from relay.providers.openai_responses import OpenAIResponses

__all__ = ["ProviderRegistry"]


class ProviderRegistry:
    """The providers this deployment knows, built from settings around one shared HTTP client."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        secret = settings.provider_keys_secret_arn
        openai_key = key_source(config.OPENAI_API_KEY_ENV, settings.openai_api_key, secret)
        anthropic_key = key_source(config.ANTHROPIC_API_KEY_ENV, settings.anthropic_api_key, secret)
        gemini_key = key_source(config.GEMINI_API_KEY_ENV, settings.gemini_api_key, secret)
        azure_key = key_source(config.AZURE_OPENAI_API_KEY_ENV, settings.azure_openai_api_key, secret)
        self.models = settings.models
        self._settings = settings
        self._metrics_any_model = settings.metrics_any_model
        # A provider is listed here even when a key is missing: its stream fails with provider_auth naming the key.
        self._providers: dict[str, ChatProvider] = {
            "openai": OpenAIChatCompletions(http, name="openai", base_url=settings.openai_base_url, key=openai_key),
            "openai-responses": OpenAIResponses(http, base_url=settings.openai_base_url, key=openai_key),
            "anthropic": AnthropicMessages(http, key=anthropic_key, base_url=settings.anthropic_base_url,
                                           max_tokens=settings.anthropic_max_tokens),
            "gemini": GeminiStreamGenerateContent(http, key=gemini_key, base_url=settings.gemini_base_url),
            "bedrock": BedrockConverseStream(read_timeout=settings.provider_read_timeout_seconds,
                                             max_tokens=settings.anthropic_max_tokens),
        }
        keys: dict[str, KeySource | None] = {"openai": openai_key, "openai-responses": openai_key,
                                             "anthropic": anthropic_key, "gemini": gemini_key}
        urls = {"openai": settings.openai_base_url, "anthropic": settings.anthropic_base_url,
                "gemini": settings.gemini_base_url}
        if settings.azure_openai_endpoint:
            endpoint = settings.azure_openai_endpoint.rstrip("/")
            self._providers["azure-openai"] = OpenAIChatCompletions(
                http, name="azure-openai", key=azure_key, azure=True,
                base_url=endpoint if settings.openai_api_version else endpoint + "/openai/v1",
                azure_api_version=settings.openai_api_version,
            )
            keys["azure-openai"] = azure_key
            urls["azure-openai"] = endpoint
        else:
            self._providers["azure-openai"] = Unconfigured("azure-openai", "AZURE_OPENAI_ENDPOINT")
        if settings.models.get("bedrock"):
            keys["bedrock"] = None  # boto3's credentials: always there on Lambda
        if settings.simulated_provider_url:
            # The simulated server speaks every provider's wire format; this one is OpenAI's.
            self._providers["simulated"] = OpenAIChatCompletions(
                http, name="simulated", base_url=settings.simulated_provider_url, key=StaticKey("none", "simulated")
            )
            keys["simulated"] = None
            urls["simulated"] = settings.simulated_provider_url
        self._keys = keys
        # The HTTP providers that may serve, for connections opened ahead (relay/connections.py): those needing no
        # key, or with one set, or one that may be in the secret (reading it to know would be a network call).
        self.origins = sorted({url for name, url in urls.items()
                               if not isinstance(key := keys[name], StaticKey) or key.value is not None})

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> ChatProvider | None:
        return self._providers.get(name)

    def offered(self, provider: str) -> list[str]:
        """The models to pick from: the listed ones ("*" allows others, it is none itself)."""
        return [model for model in self.models.get(provider, []) if model != config.ANY_MODEL]

    def allows(self, provider: str, model: str) -> bool:
        """Whether a session may use this model: one of its provider's listed models, unless the list is empty or
        holds "*"."""
        listed = self.models.get(provider, [])
        return not listed or config.ANY_MODEL in listed or model in listed

    def takes_images(self, provider: str, model: str) -> bool:
        """Whether a session's model takes images: TEXT_ONLY_MODELS and IMAGE_MODELS, else the provider's own
        knowledge of its model names."""
        known = self._providers.get(provider)
        return self._settings.takes_images(provider, model, known is not None and known.takes_images(model))

    def metric_model(self, provider: str, model: str) -> str:
        """The model as a metric dimension: itself when listed for its provider, else "other" (config.py)."""
        if self._metrics_any_model or model in self.models.get(provider, ()):
            return model
        return config.OTHER_MODEL

    async def configured(self) -> list[dict[str, object]]:
        """The providers this deployment can serve now, with their models: for a UI's picker."""
        listed: list[dict[str, object]] = []
        for name, key in sorted(self._keys.items()):
            if key is not None:
                try:
                    if not await key.get():
                        continue
                except ProviderError:
                    continue
            listed.append({"name": name, "models": self.offered(name)})
        return listed
