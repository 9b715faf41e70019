"""The AWS operations the relay's code performs while the test suite runs: the evidence the function's permissions
are checked against (tests/test_template.py).

A pytest plugin (tests/conftest.py loads it). Every botocore client made in the test process gets a
``before-parameter-build`` handler, which records an operation when the relay's code called it: a frame of
``layers/relay/relay`` is on the calling stack (the secrets read, Bedrock's stream), or the call runs for
``BoundedClient.run`` (the store's, the limits' and the attachments' calls, relay/aws.py), whose worker thread gets
no relay frame but does get a copy of its context. So the clients tests build for setup and inspection are left out,
while a client a test hands to the store (``client_factory=lambda: dynamodb``) is recorded whenever the store calls
it. Only what names a resource is kept (table, index, secret id, model id, bucket and object keys, the kinds of a
transaction's parts), never an item, an image, a prompt or a key. At the end of the session the calls are written to
``.local/aws-calls.json``.

Tests marked ``runs_last`` run after all others; ``evidence_is_complete`` tells them whether the whole suite ran.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import relay

__all__ = ["RECORD_FILE", "AwsCall", "Recorder", "evidence_is_complete", "recorder"]

ROOT = Path(__file__).resolve().parent.parent
RELAY_CODE = os.path.dirname(relay.__file__)  # as the code objects name their files
RECORD_FILE = ROOT / ".local" / "aws-calls.json"
# The parameters that name what an operation acts on.
RESOURCE_PARAMETERS = ("TableName", "IndexName", "SecretId", "modelId", "Bucket")

_store_call: contextvars.ContextVar[bool] = contextvars.ContextVar("store_call", default=False)


@dataclass(frozen=True)
class AwsCall:
    service: str  # botocore's service name: dynamodb, secretsmanager, bedrock-runtime, s3
    signing_name: str  # the IAM action prefix for these services: dynamodb, secretsmanager, bedrock, s3
    operation: str  # the API name: Query, TransactWriteItems, ConverseStream, GetObject, ...
    resources: str  # JSON of the parameters that name resources (see _named_resources)

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(json.loads(self.resources))


@dataclass
class Recorder:
    calls: set[AwsCall] = field(default_factory=set)
    deselected: int = 0

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if not (_store_call.get() or _relay_code_on_stack()):
            return
        service = model.service_model
        resources = json.dumps(_named_resources(params), sort_keys=True)
        self.calls.add(AwsCall(service.service_name, service.signing_name, model.name, resources))

    def write(self, path: Path = RECORD_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = sorted((call.service, call.operation, call.resources) for call in self.calls)
        path.write_text(json.dumps([{"service": s, "operation": o, "resources": json.loads(r)} for s, o, r in rows],
                                   indent=1) + "\n")


recorder = Recorder()


def _relay_code_on_stack() -> bool:
    frame: Any = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith(RELAY_CODE):
            return True
        frame = frame.f_back
    return False


def _named_resources(params: dict[str, Any]) -> dict[str, Any]:
    named: dict[str, Any] = {key: params[key] for key in RESOURCE_PARAMETERS if key in params}
    if "TransactItems" in params:  # [{"Put": {"TableName": ...}}, ...]
        named["TransactItems"] = [
            {kind: {key: part[key] for key in RESOURCE_PARAMETERS if key in part}}
            for item in params["TransactItems"] for kind, part in item.items()
        ]
    if "RequestItems" in params:  # {table: [{"PutRequest": ...}, ...]} or, for BatchGetItem, {table: {"Keys": ...}}
        named["RequestItems"] = {
            table: sorted({kind for request in requests for kind in request}) if isinstance(requests, list) else []
            for table, requests in params["RequestItems"].items()
        }
    if "Bucket" in params and "Key" in params:  # an S3 object (DynamoDB's Key is an item's, and names no resource)
        named["Key"] = params["Key"]
    if "Delete" in params:  # S3's DeleteObjects: {"Objects": [{"Key": ...}, ...]}
        named["Keys"] = sorted(item["Key"] for item in params["Delete"].get("Objects", []))
    return named


_patches = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    import botocore.session

    from relay.aws import BoundedClient

    config.addinivalue_line("markers", "runs_last: runs after every other test (it reads what they did)")
    create_client = botocore.session.Session.create_client
    bounded_run = BoundedClient.run

    def create_recorded_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-parameter-build", recorder.record)
        return client

    async def run_marked(self: BoundedClient, *args: Any, **kwargs: Any) -> Any:
        token = _store_call.set(True)  # asyncio.to_thread copies this context into the worker thread
        try:
            return await bounded_run(self, *args, **kwargs)
        finally:
            _store_call.reset(token)

    _patches.setattr(botocore.session.Session, "create_client", create_recorded_client)
    _patches.setattr(BoundedClient, "run", run_marked)


def pytest_deselected(items: list[pytest.Item]) -> None:
    recorder.deselected += len(items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)  # stable: order kept otherwise


def evidence_is_complete(session: pytest.Session) -> bool:
    """Whether every test module ran, with nothing deselected: only then has the code made all its calls."""
    modules = {Path(str(item.path)).name for item in session.items}
    every_module = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    return recorder.deselected == 0 and every_module <= modules


def pytest_sessionfinish(session: pytest.Session) -> None:
    if recorder.calls:
        recorder.write()


def pytest_unconfigure(config: pytest.Config) -> None:
    _patches.undo()
