"""DynamoDB for the chat store and the limits: the client, a call bounded in time (relay/aws.py), and the attribute
codec.

The codec is hand-written on purpose: boto3's ``TypeSerializer`` comes with boto3, whose import also loads
s3transfer (~30 ms of cold start measured, for nothing the relay uses), and the relay stores only S, N, BOOL, M, L
and NULL values (and reads SS).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay import config
from relay.aws import BoundedClient, create_client, error_code, error_response
from relay.errors import StoreError

__all__ = ["TTL_ATTRIBUTE", "DynamoDB", "attribute", "cancellation_codes", "condition_failed",
           "create_dynamodb_client", "deserialize", "old_item", "serialize"]

TTL_ATTRIBUTE = "expiresAt"
CONDITION_FAILED = "ConditionalCheckFailedException"


def create_dynamodb_client() -> Any:
    return create_client("dynamodb")


class DynamoDB(BoundedClient):
    """The chat table's and the limits table's client: one per process, created once the app serves."""

    service = "DynamoDB"

    def __init__(self, client_factory: Callable[[], Any] = create_dynamodb_client,
                 call_timeout: float = config.STORE_CALL_TIMEOUT_SECONDS) -> None:
        super().__init__(client_factory, call_timeout)


def condition_failed(exc: StoreError) -> bool:
    """Whether a conditional write failed its condition (and nothing else went wrong)."""
    return error_code(exc) == CONDITION_FAILED


def cancellation_codes(exc: StoreError) -> list[str | None]:
    """Why each item of a cancelled transaction failed ("ConditionalCheckFailed", "None", ...), in order; empty
    when the transaction did not get as far as being cancelled."""
    return [reason.get("Code") for reason in error_response(exc).get("CancellationReasons") or []]


def old_item(exc: StoreError) -> dict[str, Any] | None:
    """The item a failed conditional write saw (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), decoded."""
    item = error_response(exc).get("Item")
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
