"""DynamoDB persistence: one table, a chat session and its messages under one partition key.

    PK = SESSION#<chatSessionId>   SK = SESSION          the session
                                   SK = MSG#<messageId>  a message; message ids are ULIDs, so SK sorts by time
                                   SK = MSG#<messageId>#<n>  part n of a text too long for one item
                                   SK = CLIENT#<id>      a client's message id, claimed once (idempotency)

"SESSION" sorts after every "MSG#…", so one descending Query returns the session first and then the newest
messages: the single read that precedes a provider call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.errors import RelayError

SESSION_SORT_KEY = "SESSION"
MESSAGE_PREFIX = "MSG#"
MAX_ITEM_CHARS = 90_000  # text per item: even at 4 UTF-8 bytes a character it stays under DynamoDB's 400 KB
BATCH_WRITE_ITEMS = 25  # DynamoDB's limit per BatchWriteItem
CLIENT_PREFIX = "CLIENT#"  # a client's message id, claimed once: retries of the same request attach to its turn
TTL_ATTRIBUTE = "expiresAt"
TABLE_KEY_SCHEMA = {"PK": "HASH", "SK": "RANGE"}

# Message status values.
PENDING = "pending"  # accepted, stored, waiting for the provider's first token
STREAMING = "streaming"
LIVE = (PENDING, STREAMING)  # a run is (or was) generating it
COMPLETE = "complete"
ERROR = "error"
INCOMPLETE = "incomplete"
INTERRUPTED = "interrupted"


class StoreError(RelayError):
    """When DynamoDB fails after botocore's own retries."""


class SessionNotFound(RelayError):
    """When a session does not exist or belongs to someone else."""


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


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: str
    role: str  # "user" | "ai"
    content: str
    status: str
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)
    deadline_at: int | None = None  # epoch ms: a message still streaming after this was cut off

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "createdAt": self.created_at,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    session: ChatSession
    history: list[StoredMessage]  # oldest first


def now_iso() -> str:
    """The timestamp format of ``createdAt``: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_dynamodb_client() -> Any:
    # botocore straight away: boto3 would also import s3transfer, ~90 ms of cold start for nothing used here.
    # Endpoint (AWS_ENDPOINT_URL_DYNAMODB), region and credentials resolve as boto3 would resolve them.
    import botocore.session
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2, read_timeout=5)
    return botocore.session.get_session().create_client("dynamodb", config=config)


class ChatStore:
    """Async access to the table; boto3 calls run in worker threads so the event loop keeps relaying tokens."""

    def __init__(
        self,
        table_name: str,
        *,
        ttl_days: int,
        client_factory: Callable[[], Any] = create_dynamodb_client,
    ) -> None:
        self.table_name = table_name
        self.ttl_seconds = ttl_days * 86_400
        self._client_factory = client_factory
        self._client_future: Future[Any] | None = None

    def connect(self) -> None:
        """Starts creating the client in a thread of its own: it takes over 100 ms, so the app starts it once it is
        serving, where the thread does not compete with start-up for the interpreter lock. The first call waits
        for it; a call before ``connect()`` starts it."""
        if self._client_future is None:
            self._client_future = ThreadPoolExecutor(max_workers=1).submit(self._client_factory)

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        self.connect()
        assert self._client_future is not None
        client = await asyncio.wrap_future(self._client_future)
        try:
            return await asyncio.to_thread(getattr(client, operation), **kwargs)
        except Exception as exc:  # botocore raises many unrelated types
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc

    def _expires_at(self) -> int:
        return int(time.time()) + self.ttl_seconds

    async def create_session(self, session: ChatSession) -> None:
        item = {
            "PK": _session_key(session.chat_session_id),
            "SK": SESSION_SORT_KEY,
            "chatSessionId": session.chat_session_id,
            "provider": session.provider,
            "model": session.model,
            "createdAt": session.created_at,
            "ownerId": session.owner_id,
            TTL_ATTRIBUTE: self._expires_at(),
        }
        if session.fallbacks:
            item["fallbacks"] = [{"provider": provider, "model": model} for provider, model in session.fallbacks]
        if session.title is not None:
            item["title"] = session.title
        if session.system is not None:
            item["system"] = session.system
        await self._call(
            "put_item",
            TableName=self.table_name,
            Item=_serialize(item),
            ConditionExpression="attribute_not_exists(PK)",
        )

    async def load_conversation(self, chat_session_id: str, history_limit: int, owner_id: str) -> Conversation | None:
        """The session and its newest messages in one Query; None when it does not exist or is someone else's."""
        response = await self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": _session_key(chat_session_id)}},
            ScanIndexForward=False,
            Limit=history_limit + 1,
        )
        items = [_deserialize(raw) for raw in response.get("Items", [])]
        if not items or items[0]["SK"] != SESSION_SORT_KEY or items[0].get("ownerId", "") != owner_id:
            return None
        history = _messages_from_items(list(reversed(items[1:])))
        return Conversation(_session_from_item(items[0]), history)

    async def claim_client_message(
        self, chat_session_id: str, owner_id: str, client_message_id: str, message_ids: tuple[str, str]
    ) -> tuple[str, str] | None:
        """Record that a client's message starts this turn, in one transaction with the check that the session is
        the caller's. Returns None for a new turn, the earlier turn's (user, answer) ids for a retry; raises
        SessionNotFound when the session is not the caller's (and then nothing is written)."""
        key = {"PK": {"S": _session_key(chat_session_id)}, "SK": {"S": CLIENT_PREFIX + client_message_id}}
        try:
            await self._call(
                "transact_write_items",
                TransactItems=[
                    {"ConditionCheck": {
                        "TableName": self.table_name,
                        "Key": {"PK": {"S": _session_key(chat_session_id)}, "SK": {"S": SESSION_SORT_KEY}},
                        "ConditionExpression": "attribute_exists(PK) AND ownerId = :owner",
                        "ExpressionAttributeValues": {":owner": {"S": owner_id}},
                    }},
                    {"Put": {
                        "TableName": self.table_name,
                        "Item": {**key, "userMessageId": {"S": message_ids[0]}, "messageId": {"S": message_ids[1]},
                                 TTL_ATTRIBUTE: {"N": str(self._expires_at())}},
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }},
                ],
            )
            return None
        except StoreError as exc:
            reasons = getattr(exc.__cause__, "response", {}).get("CancellationReasons") or []
            codes = [reason.get("Code") for reason in reasons]
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise SessionNotFound(chat_session_id) from exc
            if codes[1:2] != ["ConditionalCheckFailed"]:
                raise
        response = await self._call("query", TableName=self.table_name, KeyConditionExpression="PK = :pk AND SK = :sk",
                                    ExpressionAttributeValues={":pk": key["PK"], ":sk": key["SK"]}, ConsistentRead=True)
        item = _deserialize(response["Items"][0])
        return item["userMessageId"], item["messageId"]

    async def get_message(self, chat_session_id: str, message_id: str) -> StoredMessage | None:
        response = await self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": {"S": _session_key(chat_session_id)},
                                       ":sk": {"S": MESSAGE_PREFIX + message_id}},
            ConsistentRead=True,
        )
        messages = _messages_from_items([_deserialize(raw) for raw in response.get("Items", [])])
        return messages[0] if messages else None

    async def list_messages(self, chat_session_id: str, owner_id: str) -> list[StoredMessage] | None:
        """All messages oldest first; None when the session does not exist or is someone else's."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _session_key(chat_session_id)}},
        }
        while True:
            response = await self._call("query", **query)
            items += [_deserialize(raw) for raw in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not items or items[-1]["SK"] != SESSION_SORT_KEY or items[-1].get("ownerId", "") != owner_id:
            return None
        return _messages_from_items(items[:-1])

    async def put_messages(self, chat_session_id: str, *messages: StoredMessage) -> None:
        """Write whole messages, in one round trip unless a text needs many items (each put replaces its item:
        safe to repeat). A text too long for one item continues in part items after it."""
        expires_at = self._expires_at()
        items = [item for message in messages for item in _message_items(chat_session_id, message, expires_at)]
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            requests = [{"PutRequest": {"Item": _serialize(item)}} for item in items[start:start + BATCH_WRITE_ITEMS]]
            while requests:
                response = await self._call("batch_write_item", RequestItems={self.table_name: requests})
                requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if requests:
                    await asyncio.sleep(0.05)


    async def checkpoint(self, chat_session_id: str, message_id: str, content: str) -> bool:
        """Store the text so far of a message still streaming; False when someone asked to stop it."""
        return await self._update_if(
            TableName=self.table_name,
            Key=_message_key(chat_session_id, message_id),
            UpdateExpression="SET content = :content, #status = :streaming",
            ConditionExpression="attribute_exists(PK) AND attribute_not_exists(cancelRequested)",
            ExpressionAttributeNames={"#status": "status"},
            # The first item's share only: a longer text is whole again with the final write.
            ExpressionAttributeValues={":content": {"S": content[:MAX_ITEM_CHARS]}, ":streaming": {"S": STREAMING}},
        )

    async def request_cancel(self, chat_session_id: str, message_id: str) -> bool:
        """Mark a message being generated to be stopped; False when it is not (finished, or unknown)."""
        return await self._update_if(
            TableName=self.table_name,
            Key=_message_key(chat_session_id, message_id),
            UpdateExpression="SET cancelRequested = :yes",
            ConditionExpression="attribute_exists(PK) AND #status IN (:pending, :streaming)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":yes": {"BOOL": True}, ":pending": {"S": PENDING},
                                       ":streaming": {"S": STREAMING}},
        )

    async def _update_if(self, **update: Any) -> bool:
        """A conditional UpdateItem: False when its condition does not hold."""
        try:
            await self._call("update_item", **update)
        except StoreError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    # Per-user limits, in their own table: counters are not chat data, and rejected requests must leave the chat
    # table untouched. PK = USER#<id>; SK = RATE#<window start> (a fixed-window counter) or STREAMS (the leases of
    # the streams running now, as "leaseId|expiresAt" strings in a string set).

    async def count_request(self, table: str, user_id: str, window_start: int, window_seconds: int, limit: int) -> bool:
        """Count one request in the window; False (and nothing counted) when the limit is reached."""
        return await self._update_if(
            TableName=table,
            Key={"PK": {"S": f"USER#{user_id}"}, "SK": {"S": f"RATE#{window_start}"}},
            UpdateExpression="ADD #count :one SET #ttl = :ttl",
            ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
            ExpressionAttributeNames={"#count": "requests", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(limit)},
                                       ":ttl": {"N": str(window_start + 2 * window_seconds)}},
        )

    async def acquire_stream(self, table: str, user_id: str, lease_id: str, expires_at: int, limit: int) -> bool:
        """Take one of the user's concurrent-stream leases; leases past their expiry (a crashed run) are freed."""
        if await self._add_lease(table, user_id, f"{lease_id}|{expires_at}", limit):
            return True
        if await self._free_expired_leases(table, user_id):
            return await self._add_lease(table, user_id, f"{lease_id}|{expires_at}", limit)
        return False

    async def _add_lease(self, table: str, user_id: str, lease: str, limit: int) -> bool:
        return await self._update_if(
            TableName=table,
            Key=_streams_key(user_id),
            UpdateExpression="ADD leases :lease",
            ConditionExpression="attribute_not_exists(leases) OR size(leases) < :limit",
            ExpressionAttributeValues={":lease": {"SS": [lease]}, ":limit": {"N": str(limit)}},
        )

    async def release_stream(self, table: str, user_id: str, lease_id: str, expires_at: int) -> None:
        await self._call("update_item", TableName=table, Key=_streams_key(user_id),
                         UpdateExpression="DELETE leases :lease",
                         ExpressionAttributeValues={":lease": {"SS": [f"{lease_id}|{expires_at}"]}})

    async def _free_expired_leases(self, table: str, user_id: str) -> bool:
        response = await self._call("get_item", TableName=table, Key=_streams_key(user_id), ConsistentRead=True)
        leases = response.get("Item", {}).get("leases", {}).get("SS", [])
        now = int(time.time())
        expired = [lease for lease in leases if int(lease.rpartition("|")[2] or 0) < now]
        if not expired:
            return False
        await self._call("update_item", TableName=table, Key=_streams_key(user_id),
                         UpdateExpression="DELETE leases :expired",
                         ExpressionAttributeValues={":expired": {"SS": expired}})
        return True


def _message_key(chat_session_id: str, message_id: str) -> dict[str, Any]:
    return {"PK": {"S": _session_key(chat_session_id)}, "SK": {"S": MESSAGE_PREFIX + message_id}}


def _streams_key(user_id: str) -> dict[str, Any]:
    return {"PK": {"S": f"USER#{user_id}"}, "SK": {"S": "STREAMS"}}


def _condition_failed(exc: StoreError) -> bool:
    cause = exc.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause is not None else None
    return code == "ConditionalCheckFailedException"


def _session_key(chat_session_id: str) -> str:
    return f"SESSION#{chat_session_id}"


def _message_item(chat_session_id: str, message: StoredMessage, expires_at: int) -> dict[str, Any]:
    return {
        "PK": _session_key(chat_session_id),
        "SK": MESSAGE_PREFIX + message.message_id,
        "messageId": message.message_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "createdAt": message.created_at,
        "metadata": message.metadata,
        "deadlineAt": message.deadline_at,
        TTL_ATTRIBUTE: expires_at,
    }


def _session_from_item(item: dict[str, Any]) -> ChatSession:
    return ChatSession(
        chat_session_id=item["chatSessionId"],
        provider=item["provider"],
        model=item["model"],
        created_at=item["createdAt"],
        title=item.get("title"),
        system=item.get("system"),
        owner_id=item.get("ownerId", ""),
        fallbacks=tuple((f["provider"], f["model"]) for f in item.get("fallbacks") or ()),
    )


def _message_items(chat_session_id: str, message: StoredMessage, expires_at: int) -> list[dict[str, Any]]:
    text = message.content
    chunks = [text[i:i + MAX_ITEM_CHARS] for i in range(0, len(text), MAX_ITEM_CHARS)] or [""]
    main = _message_item(chat_session_id, message, expires_at)
    main["content"] = chunks[0]
    if len(chunks) > 1:
        main["parts"] = len(chunks) - 1
    key = main["SK"]
    return [main] + [
        {"PK": main["PK"], "SK": f"{key}#{index:04d}", "partOf": message.message_id, "part": index,
         "content": chunk, TTL_ATTRIBUTE: expires_at}
        for index, chunk in enumerate(chunks[1:], start=1)
    ]


def _messages_from_items(items: list[dict[str, Any]]) -> list[StoredMessage]:
    """Messages from their items in the order given, each text joined again from its parts (a message whose parts
    a Query's limit cut off keeps the parts it has, in order)."""
    parts: dict[str, dict[int, str]] = {}
    mains = []
    for item in items:
        if not item["SK"].startswith(MESSAGE_PREFIX):
            continue
        if "partOf" in item:
            parts.setdefault(item["partOf"], {})[int(item["part"])] = item.get("content", "")
        else:
            mains.append(item)
    messages = []
    for item in mains:
        found = parts.get(item["messageId"], {})
        text = [item.get("content", "")]
        for index in range(1, int(item.get("parts", 0)) + 1):
            if index not in found:
                break
            text.append(found[index])
        messages.append(_message_from_item({**item, "content": "".join(text)}))
    return messages


def _message_from_item(item: dict[str, Any]) -> StoredMessage:
    status, deadline_at = item["status"], item.get("deadlineAt")
    if status in LIVE and deadline_at is not None and deadline_at < time.time() * 1000:
        status = INTERRUPTED  # the run that was writing it is gone: it will never finish
    return StoredMessage(
        message_id=item["messageId"],
        role=item["role"],
        content=item.get("content", ""),
        status=status,
        created_at=item["createdAt"],
        metadata=item.get("metadata") or {},
        deadline_at=deadline_at,
    )


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _attribute(value) for key, value in item.items() if value is not None}


def _attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (floats rounded to what a metric needs)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(round(value, 3))}
    if isinstance(value, dict):
        return {"M": {key: _attribute(inner) for key, inner in value.items() if inner is not None}}
    if isinstance(value, list):
        return {"L": [_attribute(inner) for inner in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__}")


def _deserialize(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: _value(value) for key, value in raw.items()}


def _value(attribute: dict[str, Any]) -> Any:
    [(kind, value)] = attribute.items()
    if kind == "S" or kind == "BOOL":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "M":
        return {key: _value(inner) for key, inner in value.items()}
    if kind == "L":
        return [_value(inner) for inner in value]
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(value)
    raise TypeError(f"unexpected DynamoDB type {kind}")
