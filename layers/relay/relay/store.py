"""The chat table: a session and its messages under one partition key.

    PK = SESSION#<chatSessionId>   SK = SESSION          the session
                                   SK = MSG#<messageId>  a message; message ids are ULIDs, so SK sorts by time
                                   SK = MSG#<messageId>#<n>  part n of a text too long for one item
                                   SK = CLIENT#<id>      a client's message id, claimed once (idempotency)
    PK = WARM-UP                   SK = WARM-UP          never written: read once per process, to open the first
                                                         connection before a request needs it

"SESSION" sorts after every "MSG#…", so one descending Query returns the session first and then the newest
messages: the single read that precedes a provider call.

A turn writes three times: its claim (only with a ``clientMessageId``, alongside that read), the user message and
the ``pending`` answer in one transaction that also keeps the session alive (its TTL moves with activity), and the
final answer. Checkpoints in between update the answer's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable
from typing import Any

from relay.dynamodb import (
    TTL_ATTRIBUTE,
    DynamoDB,
    cancellation_codes,
    condition_failed,
    create_dynamodb_client,
    deserialize,
    old_item,
    serialize,
)
from relay.errors import RelayError, StoreError
from relay.records import (
    INTERRUPTED,
    LIVE,
    PENDING,
    STREAMING,
    ChatSession,
    Conversation,
    StoredMessage,
)

__all__ = ["TABLE_KEY_SCHEMA", "TTL_ATTRIBUTE", "ChatStore", "ClientMessageConflict", "SessionNotFound"]

SESSION_SORT_KEY = "SESSION"
MESSAGE_PREFIX = "MSG#"
MAX_ITEM_CHARS = 90_000  # text per item: even at 4 UTF-8 bytes a character it stays under DynamoDB's 400 KB
BATCH_WRITE_ITEMS = 25  # DynamoDB's limit per BatchWriteItem
BATCH_WRITE_ROUNDS = 5  # unprocessed items are sent again this often (with backoff) before the write fails
CLIENT_PREFIX = "CLIENT#"  # a client's message id, claimed once: retries of the same request attach to its turn
# A claim whose turn never stored its message this long after (its run died between the two, or its request was
# refused and the release failed) is taken over by the next request with that id. A live run stores it within one
# store call (4 s) of the provider request.
CLAIM_STALE_SECONDS = 15
TRANSACTION_ATTEMPTS = 3  # a transaction that meets another one on the same item is tried again this often
TABLE_KEY_SCHEMA = {"PK": "HASH", "SK": "RANGE"}
WARM_UP_KEY = "WARM-UP"  # never a session's key (those are SESSION#<id>): read once per process, found by no one


class SessionNotFound(RelayError):
    """When a session does not exist or belongs to someone else."""


class ClientMessageConflict(RelayError):
    """When a ``clientMessageId`` already names another message of the session (different content)."""


def fingerprint(content: str) -> str:
    """What a claim remembers of its message: enough to tell a retry from another message that reuses the id."""
    return hashlib.sha256(content.encode()).hexdigest()[:32]


class ChatStore:
    """Async access to the chat table."""

    def __init__(self, table_name: str, *, ttl_days: int,
                 client_factory: Callable[[], Any] = create_dynamodb_client) -> None:
        self.table_name = table_name
        self.ttl_seconds = ttl_days * 86_400
        self.dynamodb = DynamoDB(client_factory)

    def connect(self) -> None:
        self.dynamodb.connect(warm_up=self._warm_up)

    def _warm_up(self, client: Any) -> None:
        """The cheapest call on the table (a key no item has: half a read unit), for the connection it opens."""
        client.get_item(TableName=self.table_name, Key={"PK": {"S": WARM_UP_KEY}, "SK": {"S": WARM_UP_KEY}},
                        ProjectionExpression="PK")

    def _expires_at(self) -> int:
        return int(time.time()) + self.ttl_seconds

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        return await self.dynamodb.call(operation, **kwargs)

    async def create_session(self, session: ChatSession) -> None:
        item = {
            "PK": _session_key(session.chat_session_id),
            "SK": SESSION_SORT_KEY,
            "chatSessionId": session.chat_session_id,
            "provider": session.provider,
            "model": session.model,
            "createdAt": session.created_at,
            "updatedAt": session.created_at,
            "ownerId": session.owner_id,
            TTL_ATTRIBUTE: self._expires_at(),
        }
        if session.fallbacks:
            item["fallbacks"] = [{"provider": provider, "model": model} for provider, model in session.fallbacks]
        if session.title is not None:
            item["title"] = session.title
        if session.system is not None:
            item["system"] = session.system
        await self._call("put_item", TableName=self.table_name, Item=serialize(item),
                         ConditionExpression="attribute_not_exists(PK)")

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
        items = [deserialize(raw) for raw in response.get("Items", [])]
        if not items or items[0]["SK"] != SESSION_SORT_KEY or items[0].get("ownerId", "") != owner_id:
            return None
        history = _messages_from_items(list(reversed(items[1:])))
        return Conversation(_session_from_item(items[0]), history)

    async def claim_client_message(
        self, chat_session_id: str, owner_id: str, client_message_id: str, message_ids: tuple[str, str],
        content: str,
    ) -> tuple[str, str] | None:
        """Record that a client's message starts this turn, in one transaction with the check that the session is
        the caller's. Returns None for a new turn, the earlier turn's (user, answer) ids for a retry; raises
        SessionNotFound when the session is not the caller's (and then nothing is written), ClientMessageConflict
        when the id was claimed for other content. A claim whose message was never stored (see CLAIM_STALE_SECONDS)
        is taken over."""
        key = _client_key(chat_session_id, client_message_id)
        now = int(time.time())
        try:
            await self._transact([
                {"ConditionCheck": {
                    "TableName": self.table_name,
                    "Key": _item_key(chat_session_id, SESSION_SORT_KEY),
                    "ConditionExpression": "attribute_exists(PK) AND ownerId = :owner",
                    "ExpressionAttributeValues": {":owner": {"S": owner_id}},
                }},
                {"Put": {
                    "TableName": self.table_name,
                    "Item": {**key, "userMessageId": {"S": message_ids[0]}, "messageId": {"S": message_ids[1]},
                             "contentHash": {"S": fingerprint(content)}, "claimedAt": {"N": str(now)},
                             TTL_ATTRIBUTE: {"N": str(self._expires_at())}},
                    "ConditionExpression": "attribute_not_exists(PK) OR "
                                           "(attribute_not_exists(accepted) AND claimedAt < :stale)",
                    "ExpressionAttributeValues": {":stale": {"N": str(now - CLAIM_STALE_SECONDS)}},
                }},
            ])
            return None
        except StoreError as exc:
            codes = cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise SessionNotFound(chat_session_id) from exc
            if codes[1:2] != ["ConditionalCheckFailed"]:
                raise
        response = await self._call("get_item", TableName=self.table_name, Key=key, ConsistentRead=True)
        item = deserialize(response.get("Item") or {})
        if not item:  # released between the two calls: the client may simply send it again
            raise StoreError("the claim changed while it was read")
        if item.get("contentHash", fingerprint(content)) != fingerprint(content):
            raise ClientMessageConflict(client_message_id)
        return item["userMessageId"], item["messageId"]

    async def release_claim(self, chat_session_id: str, client_message_id: str, message_id: str) -> None:
        """Give back a claim whose request was refused, so that the client's retry is a new turn; a claim some other
        request holds, or whose message was stored, stays."""
        try:
            await self._call(
                "delete_item", TableName=self.table_name, Key=_client_key(chat_session_id, client_message_id),
                ConditionExpression="messageId = :mine AND attribute_not_exists(accepted)",
                ExpressionAttributeValues={":mine": {"S": message_id}})
        except StoreError as exc:
            if not condition_failed(exc):
                raise

    async def begin_turn(self, session: ChatSession, user: StoredMessage, answer: StoredMessage,
                         client_message_id: str | None = None) -> None:
        """Store an accepted message and its ``pending`` answer, in one transaction that also moves the session's
        TTL and last activity (so an active chat never expires) and marks the turn's claim as taken (its
        retries then join this turn). Raises SessionNotFound when the session is gone, StoreError otherwise
        (also when the claim was taken over: the client has moved on to a retry)."""
        expires_at = self._expires_at()
        chat_session_id = session.chat_session_id
        items: list[dict[str, Any]] = [
            {"Update": {
                "TableName": self.table_name,
                "Key": _item_key(chat_session_id, SESSION_SORT_KEY),
                "UpdateExpression": "SET #ttl = :ttl, updatedAt = :now",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {":ttl": {"N": str(expires_at)}, ":now": {"S": user.created_at}},
            }},
            *({"Put": {"TableName": self.table_name, "Item": serialize(item)}}
              for message in (user, answer) for item in _message_items(chat_session_id, message, expires_at)),
        ]
        if client_message_id is not None:
            items.append({"Update": {
                "TableName": self.table_name,
                "Key": _client_key(chat_session_id, client_message_id),
                "UpdateExpression": "SET accepted = :yes",
                "ConditionExpression": "messageId = :mine",
                "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":mine": {"S": answer.message_id}},
            }})
        try:
            await self._transact(items)
        except StoreError as exc:
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise SessionNotFound(chat_session_id) from exc
            raise

    async def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, tried again when it met another transaction on one of its items (two requests in
        one session at the same moment), which botocore does not retry by itself."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                await self._call("transact_write_items", TransactItems=items)
                return
            except StoreError as exc:
                if "TransactionConflict" not in cancellation_codes(exc) or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.05 * 2**attempt))

    async def get_message(self, chat_session_id: str, message_id: str) -> StoredMessage | None:
        response = await self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": {"S": _session_key(chat_session_id)},
                                       ":sk": {"S": MESSAGE_PREFIX + message_id}},
            ConsistentRead=True,
        )
        messages = _messages_from_items([deserialize(raw) for raw in response.get("Items", [])])
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
            items += [deserialize(raw) for raw in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not items or items[-1]["SK"] != SESSION_SORT_KEY or items[-1].get("ownerId", "") != owner_id:
            return None
        return _messages_from_items(items[:-1])

    async def put_messages(self, chat_session_id: str, *messages: StoredMessage, timeout: float | None = None) -> None:
        """Write whole messages, in one round trip unless a text needs many items (each put replaces its item:
        safe to repeat). A text too long for one item continues in part items after it. ``timeout`` bounds each
        call (the store's budget by default)."""
        expires_at = self._expires_at()
        items = [item for message in messages for item in _message_items(chat_session_id, message, expires_at)]
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            requests = [{"PutRequest": {"Item": serialize(item)}} for item in items[start:start + BATCH_WRITE_ITEMS]]
            for attempt in range(BATCH_WRITE_ROUNDS):
                response = await self.dynamodb.call("batch_write_item", timeout=timeout,
                                                    RequestItems={self.table_name: requests})
                requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not requests:
                    break
                await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
            if requests:
                raise StoreError(f"DynamoDB left {len(requests)} items unprocessed")

    async def checkpoint(self, chat_session_id: str, message_id: str, content: str) -> bool:
        """Store the text so far of a message still being generated; False when someone asked to stop it (or it
        is gone with its session). A checkpoint that lands after the final write changes nothing."""
        try:
            await self._call(
                "update_item",
                TableName=self.table_name,
                Key=_item_key(chat_session_id, MESSAGE_PREFIX + message_id),
                UpdateExpression="SET content = :content, #status = :streaming",
                ConditionExpression="attribute_exists(PK) AND attribute_not_exists(cancelRequested) "
                                    "AND #status IN (:pending, :streaming)",
                ExpressionAttributeNames={"#status": "status"},
                # The first item's share only: a longer text is whole again with the final write.
                ExpressionAttributeValues={":content": {"S": content[:MAX_ITEM_CHARS]},
                                           ":streaming": {"S": STREAMING}, ":pending": {"S": PENDING}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except StoreError as exc:
            if not condition_failed(exc):
                raise
            seen = old_item(exc)
            return seen is not None and "cancelRequested" not in seen  # ended already: nothing to stop
        return True

    async def request_cancel(self, chat_session_id: str, message_id: str) -> bool:
        """Mark a message being generated to be stopped; False when it is not (finished, or unknown)."""
        try:
            await self._call(
                "update_item",
                TableName=self.table_name,
                Key=_item_key(chat_session_id, MESSAGE_PREFIX + message_id),
                UpdateExpression="SET cancelRequested = :yes",
                ConditionExpression="attribute_exists(PK) AND #status IN (:pending, :streaming)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":yes": {"BOOL": True}, ":pending": {"S": PENDING},
                                           ":streaming": {"S": STREAMING}},
            )
        except StoreError as exc:
            if condition_failed(exc):
                return False
            raise
        return True


def _session_key(chat_session_id: str) -> str:
    return f"SESSION#{chat_session_id}"


def _item_key(chat_session_id: str, sort_key: str) -> dict[str, Any]:
    return {"PK": {"S": _session_key(chat_session_id)}, "SK": {"S": sort_key}}


def _client_key(chat_session_id: str, client_message_id: str) -> dict[str, Any]:
    return _item_key(chat_session_id, CLIENT_PREFIX + client_message_id)


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
