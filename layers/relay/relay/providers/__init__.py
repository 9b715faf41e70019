"""Providers: each module turns one provider's streaming wire format into ``relay.events``.

    base.py       the request a provider is given and the protocol it answers by (ChatRequest, ChatProvider, ...)
    registry.py   the providers a deployment knows, by name (ProviderRegistry)
    streaming.py  the HTTP and SSE side the SSE providers share
    keys.py       where each API key comes from
    openai.py, openai_responses.py, anthropic.py, gemini.py, bedrock.py   one wire format each

The base types are re-exported here for convenience; the registry is not, since it imports every provider module
and they import this package.
"""

from relay.providers.base import ChatMessage, ChatProvider, ChatRequest, Exchange, Image, Unconfigured

__all__ = ["ChatMessage", "ChatProvider", "ChatRequest", "Exchange", "Image", "Unconfigured"]
