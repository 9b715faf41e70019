"""IAM for the permission check: the (action, resource) pairs a recorded AWS call needs, and what a role's policies
grant and allow. Whether a statement allows an action on a resource is moto's IAM policy evaluation (wildcards,
Deny, NotAction, NotResource), the same moto that serves DynamoDB to the tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult

from tests.aws_calls import AwsCall

__all__ = ["Permission", "allows", "bedrock_model_arn", "grants", "needed_permissions"]

Permission = tuple[str, str]  # (action, resource ARN or pattern)

# A transaction needs the actions of its parts, not one of its own.
TRANSACTION_PART_ACTIONS = {"ConditionCheck": "ConditionCheckItem", "Put": "PutItem", "Update": "UpdateItem",
                            "Delete": "DeleteItem", "Get": "GetItem"}
# Bedrock's Converse API is authorised as the model invocation it makes.
BEDROCK_ACTIONS = {"ConverseStream": "InvokeModelWithResponseStream", "Converse": "InvokeModel"}
# S3 authorises an operation as the action of its own name, but for these: HeadObject is GetObject's, ListObjectsV2 is
# ListBucket's (on the bucket), and DeleteObjects needs DeleteObject on each object it names.
S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "DeleteObjects": "DeleteObject"}
# Cross-region inference profile ids start with their geography ("us.anthropic.claude-…"); a model id with none.
INFERENCE_PROFILE_GEOGRAPHIES = {"us", "eu", "apac", "us-gov", "ca", "jp", "au", "global"}


def needed_permissions(call: AwsCall, arn: Callable[[str, str], str]) -> list[Permission]:
    """What IAM checks for one recorded call. ``arn(kind, name)`` is the deployed ARN of what the test run named:
    kind "table" (a table name, or "table/index/name"), "secret" (a secret id), "model" (a Bedrock model id) or
    "bucket" (a bucket name; an object's ARN is the bucket's and "/<key>")."""
    parameters = call.parameters
    prefix = call.signing_name  # the IAM prefix of every service the relay uses
    if call.service == "dynamodb":
        if "TransactItems" in parameters:
            return [(f"{prefix}:{TRANSACTION_PART_ACTIONS[kind]}", arn("table", _table(part)))
                    for item in parameters["TransactItems"] for kind, part in item.items()]
        if "RequestItems" in parameters:
            return [(f"{prefix}:{call.operation}", arn("table", table)) for table in parameters["RequestItems"]]
        return [(f"{prefix}:{call.operation}", arn("table", _table(parameters)))]
    if call.service == "secretsmanager":
        return [(f"{prefix}:{call.operation}", arn("secret", parameters["SecretId"]))]
    if call.service == "bedrock-runtime":
        action = BEDROCK_ACTIONS.get(call.operation, call.operation)
        return [(f"{prefix}:{action}", arn("model", parameters["modelId"]))]
    if call.service == "s3":
        action = f"{prefix}:{S3_ACTIONS.get(call.operation, call.operation)}"
        bucket = arn("bucket", parameters["Bucket"])
        if call.operation == "ListObjectsV2":
            return [(action, bucket)]
        keys = parameters["Keys"] if call.operation == "DeleteObjects" else [parameters["Key"]]
        return [(action, f"{bucket}/{key}") for key in keys]
    raise AssertionError(f"no IAM mapping for {call.service} {call.operation}: teach tests/iam.py its actions")


def _table(parameters: Mapping[str, Any]) -> str:
    index = parameters.get("IndexName")
    return str(parameters["TableName"]) + (f"/index/{index}" if index else "")


def bedrock_model_arn(model_id: str, *, partition: str, region: str, account: str) -> str:
    if model_id.startswith("arn:"):
        return model_id
    if model_id.split(".", 1)[0] in INFERENCE_PROFILE_GEOGRAPHIES:
        return f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"


def _documents(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [policy["PolicyDocument"] for policy in role["Properties"].get("Policies", [])]


def allows(role: Mapping[str, Any], permission: Permission) -> bool:
    """Whether the role's inline policies allow the action on the resource (and none denies it)."""
    action, resource = permission
    results = {IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)
               for document in _documents(role)}
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def grants(role: Mapping[str, Any]) -> Iterator[Permission]:
    """Every (action, resource pattern) an Allow statement of the role's inline policies names."""
    for document in _documents(role):
        for statement in document["Statement"]:
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, f"cannot enumerate {statement}"
            if statement["Effect"] != "Allow":
                continue
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    yield action, resource


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
