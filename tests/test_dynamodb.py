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


class Recording:
    """The moto-backed client, with the operations called on it, in order (after ``delay`` seconds to create)."""

    def __init__(self, client: object, delay: float = 0.0) -> None:
        self.client, self.delay, self.calls = client, delay, []

    def __call__(self) -> "Recording":
        time.sleep(self.delay)
        return self

    def __getattr__(self, operation: str):
        def call(**kwargs):
            self.calls.append((operation, kwargs.get("TableName")))
            return getattr(self.client, operation)(**kwargs)

        return call


def test_connecting_opens_the_first_connection_with_a_warm_up_read_before_any_request(dynamodb):
    from devtools.local_run import TABLE_NAME
    from relay.store import ChatStore

    # GIVEN the store of a process that has just become ready
    recording = Recording(dynamodb)
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=recording)
    # WHEN it connects, with no request yet
    store.connect()
    deadline = time.monotonic() + 10
    while not recording.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    # THEN it has read the table once (a key no item has), so the first request's read finds a connection open
    assert recording.calls == [("get_item", TABLE_NAME)]
    assert asyncio.run(store.load_conversation("01J00000000000000000000000", 5, "someone")) is None
    assert recording.calls == [("get_item", TABLE_NAME), ("query", TABLE_NAME)]


def test_no_warm_up_read_when_a_request_is_already_waiting_for_the_client(dynamodb):
    from devtools.local_run import TABLE_NAME
    from relay.store import ChatStore

    # GIVEN a client that takes a while to create, and a request that arrives meanwhile (a cold start)
    recording = Recording(dynamodb, delay=0.2)
    store = ChatStore(TABLE_NAME, ttl_days=1, client_factory=recording)
    store.connect()
    asyncio.run(store.load_conversation("01J00000000000000000000000", 5, "someone"))
    time.sleep(0.1)
    # THEN the request's read opened the connection itself: a warm-up beside it would only have cost CPU
    assert recording.calls == [("query", TABLE_NAME)]
