"""What every provider shares: the request it is given, and the shape it answers in.

A turn sees only ``ChatProvider``: ``stream`` for the answer, ``reasoning_unsupported`` for why a session's
reasoning option is left out, and ``takes_images`` for whether a model takes images; each provider module turns its
own wire format into ``relay.events``, and a message's images into its own image parts.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from relay.errors import PROVIDER_AUTH, ProviderError
from relay.events import ProviderEvent
from relay.reasoning import ReasoningOption

__all__ = ["ChatMessage", "ChatProvider", "ChatRequest", "Exchange", "Image", "Unconfigured"]

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Image:
    """An image a user message carries: its media type (sniffed from the bytes), the bytes, and their base64 (made
    once: a retry or a fallback sends the same images again)."""

    media_type: str  # image/png | image/jpeg | image/webp | image/gif
    data: bytes = field(repr=False)
    base64: str = field(repr=False)

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Image:
        return cls(media_type, data, base64.b64encode(data).decode("ascii"))

    @property
    def data_url(self) -> str:
        """The image as OpenAI's APIs take it inline."""
        return f"data:{self.media_type};base64,{self.base64}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    images: tuple[Image, ...] = ()  # a user message's, sent before its text (where a provider says order matters,
    # Anthropic, it asks for images first)


@dataclass(slots=True)
class Exchange:
    """How a request's HTTP exchange with the provider went, for the breakdown of the time to first token: the
    seconds spent opening a connection (0 when a pooled one was reused; what was left of it for one opened ahead),
    until the response's status and headers arrived (connecting included), and which connection it went on
    ("pooled", "opened ahead" or "new"). Filled in by the provider, where its transport tells; None where not."""

    connect_seconds: float | None = None
    first_byte_seconds: float | None = None
    connection: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    system: str | None = None
    exchange: Exchange = field(default_factory=Exchange, compare=False)
    reasoning: ReasoningOption | None = None  # the session's option, sent where the provider and model take it


class ChatProvider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        """The answer's events, a batch per network read (so that the relay writes a batch at a time)."""
        ...

    def reasoning_unsupported(self, model: str) -> str | None:
        """Why a reasoning option is left out of this provider's requests for ``model``, for the answer's metadata
        (None when it is sent)."""
        ...

    def takes_images(self, model: str) -> bool:
        """Whether ``model`` takes images, as far as the provider's model names tell (IMAGE_MODELS and
        TEXT_ONLY_MODELS have the last word: ProviderRegistry.takes_images)."""
        ...


class Unconfigured:
    """Stands in for a provider that lacks a setting, so that its sessions fail saying which one."""

    def __init__(self, name: str, variable: str) -> None:
        self.name = name
        self._variable = variable

    def reasoning_unsupported(self, model: str) -> str | None:
        return None  # its stream fails before any request

    def takes_images(self, model: str) -> bool:
        return True  # its stream fails before any request, saying which setting it lacks

    async def stream(self, request: ChatRequest) -> AsyncIterator[list[ProviderEvent]]:
        raise ProviderError(PROVIDER_AUTH, f"{self.name} is not configured: {self._variable} must be set")
        yield  # pragma: no cover - makes this an async generator
