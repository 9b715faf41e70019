"""The DynamoDB module on its own: the codec, and reading failures whatever botocore raised."""

import asyncio
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from relay.dynamodb import DynamoDB, cancellation_codes, condition_failed, deserialize, old_item, serialize
from relay.errors import StoreError


def store_error(cause: Exception) -> StoreError:
    try:
        raise StoreError("DynamoDB failed") from cause
    except StoreError as exc:
        return exc


def test_attribute_values_round_trip_without_boto3():
    item = {"s": "café 🙂", "n": 17_956_418_122_050_001, "f": 12.34567, "t": True, "m": {"a": [1, "x", {"b": 2.5}]},
            "skip": None}
    assert deserialize(serialize(item)) == {"s": "café 🙂", "n": 17_956_418_122_050_001, "f": 12.346, "t": True,
                                            "m": {"a": [1, "x", {"b": 2.5}]}}


@pytest.mark.parametrize("cause", [ReadTimeoutError(endpoint_url="http://dynamodb"),  # its .response is None
                                   EndpointConnectionError(endpoint_url="http://dynamodb"),  # it has none
                                   TimeoutError(), RuntimeError("anything")])
def test_a_failure_without_an_error_response_is_no_condition_failure_and_no_cancellation(cause):
    failure = store_error(cause)
    assert condition_failed(failure) is False
    assert cancellation_codes(failure) == []
    assert old_item(failure) is None


def test_a_condition_failure_is_read_with_the_item_it_saw():
    response = {"Error": {"Code": "ConditionalCheckFailedException"}, "Item": {"streams": {"M": {"a": {"N": "7"}}}}}
    failure = store_error(ClientError(response, "UpdateItem"))
    assert condition_failed(failure) is True
    assert old_item(failure) == {"streams": {"a": 7}}


def test_a_cancelled_transaction_says_why_each_item_failed():
    response = {"Error": {"Code": "TransactionCanceledException"},
                "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}]}
    failure = store_error(ClientError(response, "TransactWriteItems"))
    assert cancellation_codes(failure) == ["None", "ConditionalCheckFailed"]
    assert condition_failed(failure) is False


def test_a_call_that_hangs_fails_within_its_budget():
    class Hanging:
        def query(self, **kwargs):
            time.sleep(2)

    async def call() -> float:
        started = time.monotonic()
        with pytest.raises(StoreError, match="did not answer in time"):
            await DynamoDB(Hanging, call_timeout=0.2).call("query", TableName="t")
        return time.monotonic() - started

    assert asyncio.run(call()) < 1.5  # not the 2 s the call would have taken
