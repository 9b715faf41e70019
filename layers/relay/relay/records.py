"""The chat's records, as every module sees them: a session, its messages, and the statuses a message goes through.

    pending ──▶ streaming ──▶ complete | error | incomplete | interrupted

An answer is ``pending`` once the request is accepted (stored with the user message before the client hears
``start``), ``streaming`` from its first checkpoint, then terminal. One still live after its run's deadline reads
as ``interrupted``: that run is gone. An answer regenerated is kept, marked ``supersededBy`` the answer after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.reasoning import ReasoningOption

__all__ = ["COMPLETE", "ERROR", "INCOMPLETE", "INTERRUPTED", "LIVE", "PENDING", "STREAMING", "Attachment",
           "ChatSession", "Conversation", "SessionSummary", "StoredMessage", "is_id", "now_iso"]

PENDING = "pending"  # accepted, stored, waiting for the provider's first token
STREAMING = "streaming"
LIVE = (PENDING, STREAMING)  # a run is (or was) generating it
COMPLETE = "complete"
ERROR = "error"
INCOMPLETE = "incomplete"
INTERRUPTED = "interrupted"
ULID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # every session and message id; always fullmatch ("$" lets
# a trailing newline in)


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
class Attachment:
    """An image a user message names, as stored with it: its media type as sniffed from its bytes."""

    attachment_id: str
    media_type: str
    size: int  # bytes

    def to_json(self) -> dict[str, Any]:
        return {"attachmentId": self.attachment_id, "mediaType": self.media_type, "size": self.size}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Attachment:
        return cls(value["attachmentId"], value["mediaType"], int(value["size"]))


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
    superseded_by: str | None = None  # the answer a regenerate put in this one's place
    attachments: tuple[Attachment, ...] = ()  # a user message's images

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"messageId": self.message_id, "role": self.role, "content": self.content}
        if self.attachments:
            message["attachments"] = [attachment.to_json() for attachment in self.attachments]
        if self.reasoning:  # beside the content; the signatures stay in the store
            message["reasoning"] = self.reasoning
        metadata = self.metadata if self.superseded_by is None else {**self.metadata,
                                                                      "supersededBy": self.superseded_by}
        return {**message, "status": self.status, "createdAt": self.created_at, "metadata": metadata}


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session as a list of conversations shows it: ``updatedAt`` is its last activity (a turn's message)."""

    chat_session_id: str
    provider: str
    model: str
    created_at: str
    updated_at: str
    title: str | None = None
    message_count: int | None = None  # absent on sessions no turn has counted yet

    def to_json(self) -> dict[str, Any]:
        listed: dict[str, Any] = {"chatSessionId": self.chat_session_id, "title": self.title,
                                  "provider": self.provider, "model": self.model, "createdAt": self.created_at,
                                  "updatedAt": self.updated_at}
        if self.message_count is not None:
            listed["messageCount"] = self.message_count
        return listed


@dataclass(frozen=True, slots=True)
class Conversation:
    session: ChatSession
    history: list[StoredMessage]  # oldest first


def is_id(value: str) -> bool:
    """Whether a path's id can name a session or a message at all (a ULID); anything else is simply not found."""
    return bool(ULID_PATTERN.fullmatch(value))


def now_iso() -> str:
    """The timestamp format of ``createdAt``: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
