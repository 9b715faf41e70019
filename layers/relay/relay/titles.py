"""A session's title without the client's help: its first message gives it one at once (``title_from_message``),
and with ``TITLE_MODEL`` a model names it once the first answer is stored (``ModelTitles``).

The model's title is asked for after the answer is stored and awaited only after the client has had ``done``, while
the stream is still open: on Lambda the invocation lasts until the stream closes, whereas a task left running after
it would be frozen with the function and could land minutes later or never. A title that fails or takes longer than
``TITLE_TIMEOUT_SECONDS`` is only logged; the session keeps the first message's.
"""

from __future__ import annotations

import asyncio
import unicodedata

from relay import config, telemetry
from relay.events import TextDelta
from relay.providers import ChatMessage, ChatProvider, ChatRequest

__all__ = ["ModelTitles", "title_from_message"]

# What the model sees of the conversation: enough to name it, little enough to be cheap and quick.
EXCERPT_CHARS = 1_500
# Only a message's head can be its title, so only the head is searched for invisible characters: ~0.5 µs each in
# Python, which on a whole 16,000-character message would be ~8 ms before the provider request.
SCANNED_PER_TITLE_CHAR = 4
INSTRUCTIONS = ("You name conversations. Reply with a title of at most six words for the conversation you are "
                "given: no quotes, no ending punctuation, nothing else.")


def title_from_message(content: str, max_chars: int = config.TITLE_CHARS) -> str | None:
    """The message on one line, cut at a word boundary near ``max_chars`` (with an ellipsis when cut), without the
    invisible characters that would make a title look empty (zero-width spaces) or turn the list's text around
    (bidirectional overrides); None when nothing visible is left."""
    whole = " ".join(content.split())
    head = whole[:max_chars * SCANNED_PER_TITLE_CHAR]
    text = " ".join("".join(filter(_shown, head)).split())
    if not text:
        return None
    if len(text) <= max_chars:
        return text if len(head) == len(whole) else text.rstrip(" ,.;:-") + "…"
    window = text[:max_chars + 1]  # one more: a space right after the limit still ends a word that fits
    cut = window.rsplit(" ", 1)[0] if " " in window else ""
    if len(cut) < max_chars // 2:  # one very long word: cut inside it rather than keep a stub
        cut = text[:max_chars]
    return cut.rstrip(" ,.;:-") + "…"


def _shown(character: str) -> bool:
    """A space, or not a control or format character (Unicode's Cc and Cf), or one of the joiners that emoji
    sequences and some scripts need, or a subdivision flag's tag."""
    return (character.isspace() or unicodedata.category(character) not in ("Cc", "Cf")
            or character in "\u200c\u200d" or "\U000e0020" <= character <= "\U000e007f")


class ModelTitles:
    """Titles from one model (``TITLE_MODEL``, any configured provider's)."""

    def __init__(self, provider: ChatProvider, model: str, timeout: float = config.TITLE_TIMEOUT_SECONDS) -> None:
        self.provider = provider
        self.model = model
        self.timeout = timeout

    async def propose(self, question: str, answer: str) -> str | None:
        """A title for a conversation that opened with ``question`` and ``answer``; None when the model failed,
        said nothing usable or took too long (logged, never raised)."""
        excerpt = f"User: {question[:EXCERPT_CHARS]}\n\nAssistant: {answer[:EXCERPT_CHARS]}"
        request = ChatRequest(self.model, [ChatMessage("user", excerpt)], INSTRUCTIONS)
        texts: list[str] = []
        stream = self.provider.stream(request)
        try:
            async with asyncio.timeout(self.timeout):
                async for batch in stream:
                    texts += [event.text for event in batch if isinstance(event, TextDelta)]
        except Exception as exc:  # a title is a nicety: whatever went wrong, the turn is not affected
            telemetry.logger.warning("no model-made title", extra={"provider": self.provider.name,
                                                                   "model": self.model, "error": type(exc).__name__})
            return None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator, as every provider's is
        title = " ".join("".join(texts).split()).strip("\"'“”«» .")
        return title_from_message(title) if title else None
