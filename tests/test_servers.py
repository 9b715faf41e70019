"""The local servers' own behaviour (devtools/servers.py) where it differs from the library it wraps: moto's
transactions back up the items they name, not whole tables, and a failed one still changes nothing."""

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

TABLE = "servers-transactions"


@pytest.fixture
def table(dynamodb: Any) -> Iterator[str]:
    dynamodb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}])
    try:
        yield TABLE
    finally:
        dynamodb.delete_table(TableName=TABLE)


def moto_table(name: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return next(backend.tables[name] for regions in dynamodb_backends.values() for backend in regions.values()
                if name in backend.tables)


def test_a_failed_transaction_changes_nothing_and_keeps_the_table_it_did_not_copy(dynamodb, table):
    # GIVEN an item to update, one the transaction will not touch, and one it will put
    for key, value in (("changed", "before"), ("untouched", "kept")):
        dynamodb.put_item(TableName=table, Item={"PK": {"S": key}, "value": {"S": value}})
    stored = moto_table(table)
    # WHEN a transaction updates one, puts another, then fails its condition on a third
    with pytest.raises(ClientError) as failed:
        dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": {"PK": {"S": "changed"}}, "UpdateExpression": "SET #v = :v",
                        "ExpressionAttributeNames": {"#v": "value"}, "ExpressionAttributeValues": {":v": {"S": "x"}}}},
            {"Put": {"TableName": table, "Item": {"PK": {"S": "new"}, "value": {"S": "y"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"PK": {"S": "untouched"}},
                                "ConditionExpression": "attribute_not_exists(PK)"}},
        ])
    # THEN DynamoDB's answer names the failed condition, and every item is as it was
    assert failed.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in failed.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    items = {item["PK"]["S"]: item["value"]["S"] for item in dynamodb.scan(TableName=table)["Items"]}
    assert items == {"changed": "before", "untouched": "kept"}
    # AND the table was backed up by its items, not copied whole (moto puts a whole copy back in its place)
    assert moto_table(table) is stored


def test_a_transaction_that_succeeds_writes_every_item(dynamodb, table):
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"PK": {"S": key}, "value": {"S": key}}}} for key in ("a", "b")])
    assert sorted(item["PK"]["S"] for item in dynamodb.scan(TableName=table)["Items"]) == ["a", "b"]
