"""Providers: each turns its own streaming wire format into ``relay.events``.

The relay loop sees only ``ChatProvider.stream``; which provider a session uses is decided here, by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from relay.config import Settings
from relay.events import ProviderEvent

__all__ = ["ChatMessage", "ChatProvider", "ChatRequest", "ProviderRegistry"]

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    system: str | None = None


class ChatProvider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]: ...


class ProviderRegistry:
    """The providers this deployment knows, built from settings around one shared HTTP client."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        from relay.providers.keys import StaticKey, key_source
        from relay.providers.openai import OpenAIChatCompletions

        # A provider without a key is still listed: its stream fails with provider_auth naming the variable to set.
        openai_key = key_source("OPENAI_API_KEY", settings.openai_api_key, settings.provider_keys_secret_arn)
        providers: dict[str, ChatProvider] = {
            "openai": OpenAIChatCompletions(http, name="openai", base_url=settings.openai_base_url, key=openai_key),
        }
        if settings.simulated_provider_url:
            # The simulated server speaks OpenAI's wire format, so it takes the very same code path.
            providers["simulated"] = OpenAIChatCompletions(
                http, name="simulated", base_url=settings.simulated_provider_url, key=StaticKey("none", "simulated")
            )
        self._providers = providers

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> ChatProvider | None:
        return self._providers.get(name)
