"""DynamoDB for the chat store and the limits: the client, a call bounded in time, and the attribute codec.

The client is botocore's, created in a thread of its own once the app serves (see ``DynamoDB.connect``). Each call
runs in a worker thread, so the event loop keeps relaying tokens, and is bounded twice: botocore's connect and
read timeouts with a few attempts, and a budget for the whole call (``config.STORE_CALL_TIMEOUT_SECONDS``), so a
table that hangs costs a request seconds, never minutes.

The codec is hand-written on purpose: boto3's ``TypeSerializer`` comes with boto3, whose import also loads
s3transfer (~30 ms of cold start measured, for nothing the relay uses), and the relay stores only S, N, BOOL, M, L
and NULL values (and reads SS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from relay import config, telemetry
from relay.errors import StoreError

__all__ = ["TTL_ATTRIBUTE", "DynamoDB", "attribute", "cancellation_codes", "condition_failed",
           "create_dynamodb_client", "deserialize", "old_item", "serialize"]

TTL_ATTRIBUTE = "expiresAt"
CONDITION_FAILED = "ConditionalCheckFailedException"


def create_dynamodb_client() -> Any:
    # botocore straight away: boto3 would also import s3transfer, ~90 ms of cold start for nothing used here.
    # Endpoint (AWS_ENDPOINT_URL_DYNAMODB), region and credentials resolve as boto3 would resolve them.
    import botocore.session
    from botocore.config import Config

    bounded = Config(retries={"mode": "standard", "max_attempts": config.STORE_MAX_ATTEMPTS},
                     connect_timeout=config.STORE_CONNECT_TIMEOUT_SECONDS,
                     read_timeout=config.STORE_READ_TIMEOUT_SECONDS)
    return botocore.session.get_session().create_client("dynamodb", config=bounded)


class DynamoDB:
    """One client per process, created in the background, and calls that raise ``StoreError`` on any failure."""

    def __init__(self, client_factory: Callable[[], Any] = create_dynamodb_client,
                 call_timeout: float = config.STORE_CALL_TIMEOUT_SECONDS) -> None:
        self._client_factory = client_factory
        self._client_future: Future[Any] | None = None
        self._calls = 0  # started so far: the first connection is opened ahead only while none is
        self.call_timeout = call_timeout

    def connect(self, warm_up: Callable[[Any], object] | None = None) -> None:
        """Starts creating the client in a thread of its own (it takes over 100 ms), then, unless a call has
        started meanwhile, makes ``warm_up``'s call with it: the first connection (TCP and TLS) and the first call's
        lazy imports are then done before the first request's read needs them. The first call waits for the
        client; a call before ``connect()`` starts it."""
        if self._client_future is None:
            worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynamodb")
            self._client_future = worker.submit(self._client_factory)
            if warm_up is not None:
                worker.submit(self._warm_up, warm_up)
            worker.shutdown(wait=False)

    def _warm_up(self, call: Callable[[Any], object]) -> None:
        if self._calls or self._client_future is None or self._client_future.exception() is not None:
            return  # a real call opens the connection itself: a second one in parallel would only cost CPU
        try:
            call(self._client_future.result())
        except Exception as exc:  # the real calls meet and report whatever is wrong
            telemetry.logger.debug("the DynamoDB warm-up call failed", extra={"error": type(exc).__name__})

    async def call(self, operation: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """``operation`` on the client, within ``timeout`` seconds (the call's budget by default). A call cut off
        by the budget may still land later: every write the relay makes is safe to land late (puts of whole items,
        or conditional updates)."""
        self._calls += 1
        self.connect()
        assert self._client_future is not None
        try:
            async with asyncio.timeout(self.call_timeout if timeout is None else timeout):
                client = await asyncio.wrap_future(self._client_future)
                return await asyncio.to_thread(getattr(client, operation), **kwargs)
        except TimeoutError:
            raise StoreError(f"DynamoDB {operation} did not answer in time") from None
        except Exception as exc:  # botocore raises many unrelated types
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc


def _response_of(exc: StoreError) -> dict[str, Any]:
    """The DynamoDB error response behind a StoreError; empty for errors that have none (a read timeout's
    ``response`` is None, a connection error has no such attribute)."""
    response = getattr(exc.__cause__, "response", None)
    return response if isinstance(response, dict) else {}


def condition_failed(exc: StoreError) -> bool:
    """Whether a conditional write failed its condition (and nothing else went wrong)."""
    code: object = _response_of(exc).get("Error", {}).get("Code")
    return code == CONDITION_FAILED


def cancellation_codes(exc: StoreError) -> list[str | None]:
    """Why each item of a cancelled transaction failed ("ConditionalCheckFailed", "None", ...), in order; empty
    when the transaction did not get as far as being cancelled."""
    return [reason.get("Code") for reason in _response_of(exc).get("CancellationReasons") or []]


def old_item(exc: StoreError) -> dict[str, Any] | None:
    """The item a failed conditional write saw (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), decoded."""
    item = _response_of(exc).get("Item")
    return deserialize(item) if isinstance(item, dict) else None


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {key: attribute(value) for key, value in item.items() if value is not None}


def attribute(value: Any) -> dict[str, Any]:
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
        return {"M": {key: attribute(inner) for key, inner in value.items() if inner is not None}}
    if isinstance(value, list):
        return {"L": [attribute(inner) for inner in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__}")


def deserialize(raw: dict[str, Any]) -> dict[str, Any]:
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
