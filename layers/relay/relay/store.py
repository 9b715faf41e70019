"""The chat table: a session and its messages under one partition key, and an index of each user's sessions.

    PK = SESSION#<chatSessionId>   SK = SESSION          the session: ownerId, updatedAt (last activity), title,
                                                         messageCount, ... (deleting: an erase under way)
                                   SK = MSG#<messageId>  a message; message ids are ULIDs, so SK sorts by time
                                   SK = MSG#<messageId>#<n>  part n of a text too long for one item (an answer's
                                                             content, then its reasoning, cut into equal shares)
                                   SK = CLIENT#<id>      a client's message id, claimed once (idempotency)
    PK = WARM-UP                   SK = WARM-UP          never written: read once per process, to open the first
                                                         connection before a request needs it

    index sessions-by-owner        ownerId = <userId>    updatedAt = <last activity>   (session items only: sparse)

"SESSION" sorts after every "MSG#…", so one descending Query returns the session first and then the newest
messages: the single read that precedes a provider call. Only session items carry ``ownerId`` and ``updatedAt``,
so the index holds nothing else, and one Query of it lists a user's conversations, most recently active first.

A turn writes three times: its claim (only with a ``clientMessageId``, alongside that read); the user message and
the ``pending`` answer in one transaction that also keeps the session current (its TTL, last activity, message
count and, the first time, its title), marks the claim accepted and, for a regenerate, marks the answer it
replaces ``supersededBy`` the new one; and the final answer, in one transaction that lands only while the session
and the answer still exist (a deleted session never comes back) and that also adds the turn's usage to the limits
table (part items beyond what one transaction holds are batch-written first). Checkpoints in between update the
answer's text and read whether a Stop was asked; with ``TITLE_MODEL``, a model-made title replaces the first one
afterwards.

An erase marks the session ``deleting`` first: from then on no turn, claim or final write lands in it, and its
images in the attachments bucket and then its items are deleted, the session item last, so that an erase cut short
is finished by asking again.

A user message's images are named in its item (``attachments``: id, media type and size); the images themselves are
in the attachments bucket (relay/attachments.py), under the session's prefix.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.attachments import AttachmentStore
from relay.dynamodb import (
    TTL_ATTRIBUTE,
    DynamoDB,
    attribute,
    cancellation_codes,
    condition_failed,
    create_dynamodb_client,
    deserialize,
    old_item,
    serialize,
)
from relay.errors import RelayError, StoreError
from relay.reasoning import ReasoningOption
from relay.records import (
    INTERRUPTED,
    LIVE,
    PENDING,
    STREAMING,
    Attachment,
    ChatSession,
    Conversation,
    SessionSummary,
    StoredMessage,
    is_id,
)

__all__ = ["SESSION_INDEX", "SESSION_INDEX_ATTRIBUTES", "SESSION_INDEX_KEY_SCHEMA", "SESSION_SETTINGS",
           "TABLE_KEY_SCHEMA", "TTL_ATTRIBUTE", "AnswerReplaced", "ChatStore", "ClientMessageConflict", "InvalidCursor",
           "SessionNotFound", "SessionPage"]

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
SESSION_INDEX = "sessions-by-owner"
SESSION_INDEX_KEY_SCHEMA = {"ownerId": "HASH", "updatedAt": "RANGE"}
# What a listed session shows, copied into the index (its system text is not: a list never shows it).
SESSION_INDEX_ATTRIBUTES = ("chatSessionId", "title", "provider", "model", "createdAt", "messageCount", "deleting")
# DynamoDB's bounds on one TransactWriteItems: 100 actions and 4 MB. A final write's items are at most ~360 KB each
# (MAX_ITEM_CHARS at 4 bytes a character), so this many fit; an answer longer than that (~900,000 characters,
# more than any provider streams within the function's 300 s) writes its further parts first.
TRANSACT_MAX_MESSAGE_ITEMS = 10
# A conversation's read goes on past items that are no message to send (replaced answers, part items) in pages of
# this many, up to this many Queries in all: ~320 such items behind the newest messages, each further Query one
# more round trip (~5 ms) paid only by a session that has them. Past that, older messages are left out.
HISTORY_PAGE_ITEMS = 100
HISTORY_READS = 4
MAX_CURSOR_CHARS = 1_000
ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SESSION_SETTINGS = ("title", "system", "provider", "model", "fallbacks", "reasoning")  # what a client may change
WARM_UP_KEY = "WARM-UP"  # never a session's key (those are SESSION#<id>): read once per process, found by no one


class SessionNotFound(RelayError):
    """When a session does not exist or belongs to someone else."""


class ClientMessageConflict(RelayError):
    """When a ``clientMessageId`` already names another message of the session (different content)."""


class AnswerReplaced(RelayError):
    """When a regenerate finds the answer it would replace already replaced by another one."""


class InvalidCursor(RelayError):
    """When a listing's cursor is not one this store gave the caller."""


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[SessionSummary]
    next_cursor: str | None  # None on the last page


def fingerprint(content: str, attachment_ids: Sequence[str] = ()) -> str:
    """What a claim remembers of its message: enough to tell a retry from another message that reuses the id (a
    message without images has the fingerprint it always had)."""
    named = content + "".join(f"\0{attachment_id}" for attachment_id in attachment_ids)
    return hashlib.sha256(named.encode()).hexdigest()[:32]


class ChatStore:
    """Async access to the chat table, and to the attachments bucket where a conversation's images are (None: a
    deployment without image attachments)."""

    def __init__(self, table_name: str, *, ttl_days: int,
                 client_factory: Callable[[], Any] = create_dynamodb_client,
                 attachments: AttachmentStore | None = None) -> None:
        self.table_name = table_name
        self.ttl_seconds = ttl_days * 86_400
        self.dynamodb = DynamoDB(client_factory)
        self.attachments = attachments

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
        item: dict[str, Any] = {
            "PK": _session_key(session.chat_session_id),
            "SK": SESSION_SORT_KEY,
            "chatSessionId": session.chat_session_id,
            "provider": session.provider,
            "model": session.model,
            "createdAt": session.created_at,
            "updatedAt": session.created_at,
            "ownerId": session.owner_id or None,  # an index key cannot be empty: an ownerless session is not listed
            TTL_ATTRIBUTE: self._expires_at(),
        }
        if session.fallbacks:
            item["fallbacks"] = [{"provider": provider, "model": model} for provider, model in session.fallbacks]
        if session.title is not None:
            item["title"] = session.title
        if session.system is not None:
            item["system"] = session.system
        if session.reasoning is not None:
            item["reasoning"] = session.reasoning.to_json()
        await self._call("put_item", TableName=self.table_name, Item=serialize(item),
                         ConditionExpression="attribute_not_exists(PK)")

    async def load_conversation(self, chat_session_id: str, history_limit: int, owner_id: str) -> Conversation | None:
        """The session and its newest ``history_limit`` messages, in one Query; None when it does not exist or is
        someone else's. A Query's limit counts items, and some items are no message the provider is sent: answers
        a regenerate replaced and the part items of long texts. While they leave a full page short of that many
        messages, older items are read too, in at most HISTORY_READS Queries in all (only such sessions pay for
        them): a user who regenerates an answer again and again must not push the message it answers, and the
        conversation before it, out of the window."""
        query: dict[str, Any] = {
            "TableName": self.table_name, "KeyConditionExpression": "PK = :pk", "ScanIndexForward": False,
            "ExpressionAttributeValues": {":pk": {"S": _session_key(chat_session_id)}}, "Limit": history_limit + 1,
        }
        items: list[dict[str, Any]] = []
        for _ in range(HISTORY_READS):
            response = await self._call("query", **query)
            items += [deserialize(raw) for raw in response.get("Items", [])]
            if not items or not _is_live_session_of(items[0], owner_id):
                return None
            if "LastEvaluatedKey" not in response or _current_messages(items) >= history_limit:
                break
            query.update(ExclusiveStartKey=response["LastEvaluatedKey"], Limit=HISTORY_PAGE_ITEMS)
        history = _messages_from_items(list(reversed(items[1:])))
        return Conversation(_session_from_item(items[0]), history)

    async def claim_client_message(
        self, chat_session_id: str, owner_id: str, client_message_id: str, message_ids: tuple[str, str],
        content: str, attachment_ids: Sequence[str] = (),
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
                    "ConditionExpression": "ownerId = :owner AND attribute_not_exists(deleting)",
                    "ExpressionAttributeValues": {":owner": {"S": owner_id}},
                }},
                {"Put": {
                    "TableName": self.table_name,
                    "Item": {**key, "userMessageId": {"S": message_ids[0]}, "messageId": {"S": message_ids[1]},
                             "contentHash": {"S": fingerprint(content, attachment_ids)},
                             "claimedAt": {"N": str(now)},
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
        claimed = fingerprint(content, attachment_ids)
        if item.get("contentHash", claimed) != claimed:
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
                         client_message_id: str | None = None, *, title: str | None = None,
                         supersedes: str | None = None) -> None:
        """Store an accepted message and its ``pending`` answer, in one transaction that also keeps the session
        current (its TTL, so an active chat never expires; its last activity and message count; ``title`` unless it
        has one) and marks the turn's claim as taken (its retries then join this turn). A regenerate
        (``supersedes``, the answer replaced) stores no user message: ``user`` is the one already stored, and the
        replaced answer is marked ``supersededBy`` the new one. Raises SessionNotFound when the session is gone
        or being erased, AnswerReplaced when another regenerate replaced that answer first, StoreError otherwise
        (also when the claim was taken over: the client has moved on to a retry)."""
        expires_at = self._expires_at()
        chat_session_id = session.chat_session_id
        new_messages = (answer,) if supersedes else (user, answer)
        values: dict[str, Any] = {":ttl": {"N": str(expires_at)}, ":now": {"S": answer.created_at},
                                  ":added": {"N": str(len(new_messages))}}
        update = "SET #ttl = :ttl, updatedAt = :now"
        if title is not None:
            update += ", title = if_not_exists(title, :title)"
            values[":title"] = {"S": title}
        items: list[dict[str, Any]] = [
            {"Update": {
                "TableName": self.table_name,
                "Key": _item_key(chat_session_id, SESSION_SORT_KEY),
                "UpdateExpression": update + " ADD messageCount :added",
                "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(deleting)",
                "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
                "ExpressionAttributeValues": values,
            }},
            *({"Put": {"TableName": self.table_name, "Item": serialize(item)}}
              for message in new_messages for item in _message_items(chat_session_id, message, expires_at)),
        ]
        superseding = len(items)
        if supersedes is not None:
            items.append({"Update": {
                "TableName": self.table_name,
                "Key": _item_key(chat_session_id, MESSAGE_PREFIX + supersedes),
                "UpdateExpression": "SET supersededBy = :new",
                "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(supersededBy)",
                "ExpressionAttributeValues": {":new": {"S": answer.message_id}},
            }})
        if client_message_id is not None:
            items.append({"Update": {
                "TableName": self.table_name,
                "Key": _client_key(chat_session_id, client_message_id),
                # The user message's id too: a regenerate's claim was made before its user message was known.
                "UpdateExpression": "SET accepted = :yes, userMessageId = :user",
                "ConditionExpression": "messageId = :mine",
                "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":mine": {"S": answer.message_id},
                                              ":user": {"S": user.message_id}},
            }})
        try:
            await self._transact(items)
        except StoreError as exc:
            codes = cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise SessionNotFound(chat_session_id) from exc
            if supersedes is not None and codes[superseding:superseding + 1] == ["ConditionalCheckFailed"]:
                raise AnswerReplaced(supersedes) from exc
            raise

    async def finish_turn(self, chat_session_id: str, answer: StoredMessage, *, also: Iterable[dict[str, Any]] = (),
                          timeout: float | None = None) -> None:
        """The final write of an answer: its item and part items, in one transaction that lands only while the
        session is not being erased and the answer's item exists, so that a session deleted under a turn never
        comes back, not even as part items. ``also`` adds the transaction's parts of other writes (the turn's usage,
        in the limits table). Raises SessionNotFound when the session or the answer is gone, StoreError otherwise.
        ``timeout`` bounds each call (the store's budget by default)."""
        expires_at = self._expires_at()
        main, *parts = _message_items(chat_session_id, answer, expires_at)
        if len(parts) >= TRANSACT_MAX_MESSAGE_ITEMS:  # see TRANSACT_MAX_MESSAGE_ITEMS: unreachable without the main
            extra, parts = parts[TRANSACT_MAX_MESSAGE_ITEMS - 1:], parts[:TRANSACT_MAX_MESSAGE_ITEMS - 1]
            await self._batch_write([{"PutRequest": {"Item": serialize(item)}} for item in extra], timeout)
        items: list[dict[str, Any]] = [
            {"ConditionCheck": {
                "TableName": self.table_name,
                "Key": _item_key(chat_session_id, SESSION_SORT_KEY),
                "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(deleting)",
            }},
            {"Put": {"TableName": self.table_name, "Item": serialize(main),
                     "ConditionExpression": "attribute_exists(PK)"}},
            *({"Put": {"TableName": self.table_name, "Item": serialize(part)}} for part in parts),
            *also,
        ]
        try:
            await self._transact(items, timeout)
        except StoreError as exc:
            if "ConditionalCheckFailed" in cancellation_codes(exc)[:2]:
                raise SessionNotFound(chat_session_id) from exc
            raise

    async def _transact(self, items: list[dict[str, Any]], timeout: float | None = None) -> None:
        """TransactWriteItems, tried again when it met another transaction on one of its items (two requests in
        one session at the same moment), which botocore does not retry by itself."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                await self.dynamodb.call("transact_write_items", timeout=timeout, TransactItems=items)
                return
            except StoreError as exc:
                if "TransactionConflict" not in cancellation_codes(exc) or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.05 * 2**attempt))

    async def get_message(self, chat_session_id: str, message_id: str) -> StoredMessage | None:
        """One message, whole: its items can outgrow a Query's 1 MB page (an answer and its reasoning, each up to
        the function's response size), so every page is read."""
        items = await self._query_all(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": {"S": _session_key(chat_session_id)},
                                       ":sk": {"S": MESSAGE_PREFIX + message_id}},
            ConsistentRead=True,
        )
        messages = _messages_from_items(items)
        return messages[0] if messages else None

    async def _query_all(self, **query: Any) -> list[dict[str, Any]]:
        """Every item a Query finds, page after page."""
        items: list[dict[str, Any]] = []
        query["TableName"] = self.table_name
        while True:
            response = await self._call("query", **query)
            items += [deserialize(raw) for raw in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return items
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def list_messages(self, chat_session_id: str, owner_id: str) -> list[StoredMessage] | None:
        """All messages oldest first; None when the session does not exist or is someone else's."""
        items = await self._query_all(KeyConditionExpression="PK = :pk",
                                      ExpressionAttributeValues={":pk": {"S": _session_key(chat_session_id)}})
        if not items or not _is_live_session_of(items[-1], owner_id):
            return None
        return _messages_from_items(items[:-1])

    async def put_messages(self, chat_session_id: str, *messages: StoredMessage, timeout: float | None = None) -> None:
        """Write whole messages, unconditionally, in one round trip unless a text needs many items (each put
        replaces its item: safe to repeat). A text too long for one item continues in part items after it.
        ``timeout`` bounds each call (the store's budget by default)."""
        expires_at = self._expires_at()
        items = [item for message in messages for item in _message_items(chat_session_id, message, expires_at)]
        await self._batch_write([{"PutRequest": {"Item": serialize(item)}} for item in items], timeout)

    async def _batch_write(self, requests: list[dict[str, Any]], timeout: float | None = None) -> None:
        """BatchWriteItem, 25 requests at a time; what DynamoDB leaves unprocessed is sent again (with backoff)
        at most BATCH_WRITE_ROUNDS times before the write fails."""
        for start in range(0, len(requests), BATCH_WRITE_ITEMS):
            batch = requests[start:start + BATCH_WRITE_ITEMS]
            for attempt in range(BATCH_WRITE_ROUNDS):
                response = await self.dynamodb.call("batch_write_item", timeout=timeout,
                                                    RequestItems={self.table_name: batch})
                batch = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not batch:
                    break
                await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
            if batch:
                raise StoreError(f"DynamoDB left {len(batch)} items unprocessed")

    async def checkpoint(self, chat_session_id: str, message_id: str, content: str, reasoning: str = "") -> bool:
        """Store the text and reasoning so far of a message still being generated; False when someone asked to stop
        it. Raises SessionNotFound when it is gone with its session (and then writes nothing). A checkpoint that
        lands after the final write changes nothing."""
        # The first item's share only, the answer's text first: a longer text is whole again with the final write.
        [first] = _segments(content[:MAX_ITEM_CHARS], reasoning[:MAX_ITEM_CHARS - len(content[:MAX_ITEM_CHARS])])
        try:
            await self._call(
                "update_item",
                TableName=self.table_name,
                Key=_item_key(chat_session_id, MESSAGE_PREFIX + message_id),
                UpdateExpression="SET content = :content, reasoning = :reasoning, #status = :streaming",
                ConditionExpression="attribute_exists(PK) AND attribute_not_exists(cancelRequested) "
                                    "AND #status IN (:pending, :streaming)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":content": {"S": first["content"]},
                                           ":reasoning": {"S": first.get("reasoning", "")},
                                           ":streaming": {"S": STREAMING}, ":pending": {"S": PENDING}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except StoreError as exc:
            if not condition_failed(exc):
                raise
            seen = old_item(exc)
            if seen is None:
                raise SessionNotFound(chat_session_id) from exc
            return "cancelRequested" not in seen  # ended already: nothing to stop
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


    # A user's conversations.

    async def list_sessions(self, owner_id: str, limit: int, cursor: str | None = None) -> SessionPage:
        """The owner's sessions, most recently active first, ``limit`` at most (fewer when some are being erased),
        from where ``cursor`` (a previous page's ``next_cursor``) left off. One Query of the index, which is
        eventually consistent: a session shows there within about a second of its last change. Raises
        InvalidCursor for a cursor this store did not give this owner."""
        query: dict[str, Any] = {
            "TableName": self.table_name, "IndexName": SESSION_INDEX, "Limit": limit, "ScanIndexForward": False,
            "KeyConditionExpression": "ownerId = :owner", "FilterExpression": "attribute_not_exists(deleting)",
            "ExpressionAttributeValues": {":owner": {"S": owner_id}},
        }
        if cursor is not None:
            query["ExclusiveStartKey"] = _start_key(cursor, owner_id)
        response = await self._call("query", **query)
        sessions = [_summary_from_item(deserialize(raw)) for raw in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return SessionPage(sessions, _cursor(deserialize(last)) if last else None)

    async def delete_sessions_of(self, owner_id: str, until: float) -> bool:
        """Erase every session the owner has (found through the index, those an erase left unfinished included),
        one after the other, starting none after ``until`` (epoch seconds). True when none is left."""
        query: dict[str, Any] = {
            "TableName": self.table_name, "IndexName": SESSION_INDEX, "KeyConditionExpression": "ownerId = :owner",
            "ExpressionAttributeValues": {":owner": {"S": owner_id}}, "ProjectionExpression": "chatSessionId",
        }
        while True:
            response = await self._call("query", **query)
            for raw in response.get("Items", []):
                if time.time() >= until:
                    return False
                await self.delete_session(deserialize(raw)["chatSessionId"], owner_id)
            if "LastEvaluatedKey" not in response:
                return True
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def get_session(self, chat_session_id: str, owner_id: str) -> ChatSession | None:
        """The session, None when it does not exist, is being erased or is someone else's."""
        response = await self._call("get_item", TableName=self.table_name,
                                    Key=_item_key(chat_session_id, SESSION_SORT_KEY), ConsistentRead=True)
        item = deserialize(response.get("Item") or {})
        return _session_from_item(item) if item and _is_live_session_of(item, owner_id) else None

    async def update_session(self, session: ChatSession, fields: Collection[str] = SESSION_SETTINGS,
                             ) -> tuple[ChatSession, SessionSummary] | None:
        """Replace the settings ``fields`` names (of those a client may change: title, system, provider, model,
        fallbacks, reasoning) with ``session``'s, and only those: another written since ``session`` was read (a
        turn's first title, a model-made one) stays. An empty system or fallbacks removes them. None when the
        session is not the owner's (or is gone, or being erased), and then nothing is written. Last activity is
        left as it was: a rename is not one."""
        values: dict[str, Any] = {":owner": {"S": session.owner_id}}
        assignments, removals = [], []
        settings = {"provider": session.provider, "model": session.model, "title": session.title,
                    "system": session.system,  # a reserved word: every name goes through #names
                    "fallbacks": [{"provider": p, "model": m} for p, m in session.fallbacks] or None,
                    "reasoning": session.reasoning.to_json() if session.reasoning is not None else None}
        written = [name for name in settings if name in fields]
        for name in written:
            if (value := settings[name]) is None:
                removals.append(f"#{name}")
            else:
                assignments.append(f"#{name} = :{name}")
                values[f":{name}"] = attribute(value)
        expression = " ".join(f"{verb} {', '.join(names)}" for verb, names in (("SET", assignments),
                                                                                ("REMOVE", removals)) if names)
        try:
            response = await self._call(
                "update_item", TableName=self.table_name, Key=_item_key(session.chat_session_id, SESSION_SORT_KEY),
                UpdateExpression=expression, ConditionExpression="ownerId = :owner AND attribute_not_exists(deleting)",
                ExpressionAttributeNames={f"#{name}": name for name in written}, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW")
        except StoreError as exc:
            if condition_failed(exc):
                return None
            raise
        item = deserialize(response["Attributes"])
        return _session_from_item(item), _summary_from_item(item)

    async def replace_title(self, chat_session_id: str, title: str, replacing: str) -> bool:
        """Give the session ``title`` if it still has the one it was given automatically (``replacing``): a name
        the user chose meanwhile stays. False when it did."""
        try:
            await self._call(
                "update_item", TableName=self.table_name, Key=_item_key(chat_session_id, SESSION_SORT_KEY),
                UpdateExpression="SET title = :title", ConditionExpression="title = :was AND "
                                                                           "attribute_not_exists(deleting)",
                ExpressionAttributeValues={":title": {"S": title}, ":was": {"S": replacing}})
        except StoreError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    async def delete_session(self, chat_session_id: str, owner_id: str) -> bool:
        """Erase a session and every item under it (messages, their parts, claims) and its images. It is marked
        ``deleting`` first, which no turn, claim or final write gets past, then its images and items are deleted,
        the session item last.
        False when it is not the owner's or is gone already, and then nothing is written; an erase cut short (the
        store failed) is finished by calling this again."""
        try:
            await self._call(
                "update_item", TableName=self.table_name, Key=_item_key(chat_session_id, SESSION_SORT_KEY),
                UpdateExpression="SET deleting = :now", ConditionExpression="ownerId = :owner",
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}, ":owner": {"S": owner_id}})
        except StoreError as exc:
            if condition_failed(exc):
                return False
            raise
        if self.attachments is not None:
            await self.attachments.delete_session(chat_session_id)
        keys: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table_name, "KeyConditionExpression": "PK = :pk", "ProjectionExpression": "PK, SK",
            "ExpressionAttributeValues": {":pk": {"S": _session_key(chat_session_id)}},
            "ConsistentRead": True,  # sees every write that landed before the mark
        }
        while True:
            response = await self._call("query", **query)
            keys += [key for key in response.get("Items", []) if key["SK"]["S"] != SESSION_SORT_KEY]
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        await self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
        await self._call("delete_item", TableName=self.table_name, Key=_item_key(chat_session_id, SESSION_SORT_KEY))
        return True


def _current_messages(items: list[dict[str, Any]]) -> int:
    """How many of ``items`` are messages a provider may be sent: not a part item, not a replaced answer."""
    return sum(1 for item in items if item["SK"].startswith(MESSAGE_PREFIX) and "partOf" not in item
               and "supersededBy" not in item)


def _is_live_session_of(item: dict[str, Any], owner_id: str) -> bool:
    """A session item of this owner, not being erased."""
    return item["SK"] == SESSION_SORT_KEY and item.get("ownerId", "") == owner_id and "deleting" not in item


def _cursor(key: dict[str, Any]) -> str:
    """A page's LastEvaluatedKey as an opaque token: the index's key and the session's id."""
    fields = {"o": key["ownerId"], "u": key["updatedAt"], "s": key["PK"].removeprefix("SESSION#")}
    return base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode().rstrip("=")


def _start_key(cursor: str, owner_id: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor stands for, checked field by field: a cursor made up, cut or someone else's
    is refused here, and never reaches DynamoDB (which may answer a malformed start key with a 500)."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        fields = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidCursor("the cursor is not one this relay gave out") from None
    if (not isinstance(fields, dict) or set(fields) != {"o", "u", "s"}
            or not all(isinstance(value, str) for value in fields.values())
            or not is_id(fields["s"]) or not ISO_TIMESTAMP.match(fields["u"])):
        raise InvalidCursor("the cursor is not one this relay gave out")
    if fields["o"] != owner_id:
        raise InvalidCursor("the cursor belongs to another user's list")
    return {"ownerId": {"S": owner_id}, "updatedAt": {"S": fields["u"]},
            **_item_key(fields["s"], SESSION_SORT_KEY)}


def _summary_from_item(item: dict[str, Any]) -> SessionSummary:
    count = item.get("messageCount")
    return SessionSummary(chat_session_id=item["chatSessionId"], provider=item["provider"], model=item["model"],
                          created_at=item["createdAt"], updated_at=item.get("updatedAt", item["createdAt"]),
                          title=item.get("title"), message_count=int(count) if count is not None else None)


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
        "reasoningSignatures": list(message.reasoning_signatures) or None,
        "attachments": [attachment.to_json() for attachment in message.attachments] or None,
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
        reasoning=ReasoningOption.from_json(item.get("reasoning")),
    )


def _segments(content: str, reasoning: str) -> list[dict[str, str]]:
    """The content and then the reasoning, cut into shares of at most MAX_ITEM_CHARS characters in all, one for each
    item: ``{"content"}``, with ``"reasoning"`` where the share holds some."""
    segments = []
    for start in range(0, max(len(content) + len(reasoning), 1), MAX_ITEM_CHARS):
        end = start + MAX_ITEM_CHARS
        segment = {"content": content[start:end]}
        thought = reasoning[max(0, start - len(content)):max(0, end - len(content))]
        if thought:
            segment["reasoning"] = thought
        segments.append(segment)
    return segments


def _message_items(chat_session_id: str, message: StoredMessage, expires_at: int) -> list[dict[str, Any]]:
    segments = _segments(message.content, message.reasoning)
    main = {**_message_item(chat_session_id, message, expires_at), **segments[0]}
    if len(segments) > 1:
        main["parts"] = len(segments) - 1
    key = main["SK"]
    return [main] + [
        {"PK": main["PK"], "SK": f"{key}#{index:04d}", "partOf": message.message_id, "part": index, **segment,
         TTL_ATTRIBUTE: expires_at}
        for index, segment in enumerate(segments[1:], start=1)
    ]


def _messages_from_items(items: list[dict[str, Any]]) -> list[StoredMessage]:
    """Messages from their items in the order given, each text and reasoning joined again from its parts (a message
    whose parts a Query's limit cut off keeps the parts it has, in order)."""
    parts: dict[str, dict[int, dict[str, Any]]] = {}
    mains = []
    for item in items:
        if not item["SK"].startswith(MESSAGE_PREFIX):
            continue
        if "partOf" in item:
            parts.setdefault(item["partOf"], {})[int(item["part"])] = item
        else:
            mains.append(item)
    messages = []
    for item in mains:
        found = parts.get(item["messageId"], {})
        pieces = [item]
        for index in range(1, int(item.get("parts", 0)) + 1):
            if index not in found:
                break
            pieces.append(found[index])
        content = "".join(piece.get("content", "") for piece in pieces)
        reasoning = "".join(piece.get("reasoning", "") for piece in pieces)
        messages.append(_message_from_item({**item, "content": content, "reasoning": reasoning}))
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
        reasoning=item.get("reasoning", ""),
        reasoning_signatures=tuple(item.get("reasoningSignatures") or ()),
        superseded_by=item.get("supersededBy"),
        attachments=tuple(Attachment.from_json(value) for value in item.get("attachments") or ()),
    )
