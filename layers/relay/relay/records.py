"""The chat's records, as every module sees them: a session, its messages, and the statuses a message goes through.

    pending ──▶ streaming ──▶ complete | error | incomplete | interrupted

An answer is ``pending`` once the request is accepted (stored with the user message before the client hears
``start``), ``streaming`` from its first checkpoint, then terminal. One still live after its run's deadline reads
as ``interrupted``: that run is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.reasoning import ReasoningOption

__all__ = ["COMPLETE", "ERROR", "INCOMPLETE", "INTERRUPTED", "LIVE", "PENDING", "STREAMING", "ChatSession",
           "Conversation", "StoredMessage", "now_iso"]

PENDING = "pending"  # accepted, stored, waiting for the provider's first token
STREAMING = "streaming"
LIVE = (PENDING, STREAMING)  # a run is (or was) generating it
COMPLETE = "complete"
ERROR = "error"
INCOMPLETE = "incomplete"
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ChatSession:
    chat_session_id: str
    provider: str
    model: str
    created_at: str
    title: str | None = None
    system: str | None = None
    owner_id: str = ""
    fallbacks: tuple[tuple[str, str], ...] = ()  # (provider, model) pairs to try when the first fails to start
    reasoning: ReasoningOption | None = None  # what the session asks its models for, where they take it


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: str
    role: str  # "user" | "ai"
    content: str
    status: str
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)
    deadline_at: int | None = None  # epoch ms: a message still streaming after this was cut off
    reasoning: str = ""  # an answer's reasoning, as the provider streamed it
    reasoning_signatures: tuple[str, ...] = ()  # the provider's signatures over it: kept, never shown

    def to_json(self) -> dict[str, Any]:
        message = {"messageId": self.message_id, "role": self.role, "content": self.content}
        if self.reasoning:  # beside the content; the signatures stay in the store
            message["reasoning"] = self.reasoning
        return {**message, "status": self.status, "createdAt": self.created_at, "metadata": self.metadata}


@dataclass(frozen=True, slots=True)
class Conversation:
    session: ChatSession
    history: list[StoredMessage]  # oldest first


def now_iso() -> str:
    """The timestamp format of ``createdAt``: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
