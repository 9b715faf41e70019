"""Real servers on loopback, each in a background thread: uvicorn for ASGI apps, moto for DynamoDB and S3."""

from __future__ import annotations

import copy
import logging
import socket
import threading
import time
from collections.abc import Collection, Sequence
from contextlib import ExitStack
from typing import Any

import uvicorn

from relay.store import (
    SESSION_INDEX,
    SESSION_INDEX_ATTRIBUTES,
    SESSION_INDEX_KEY_SCHEMA,
    TABLE_KEY_SCHEMA,
    TTL_ATTRIBUTE,
)

HOST = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"  # listening on every interface; clients on this machine still connect through loopback


def _connect_host(host: str) -> str:
    return HOST if host == ANY_ADDRESS else host


class UvicornThread:
    """An ASGI app served by uvicorn on a free (or given) port of loopback (or of ``host``) until ``stop()``."""

    def __init__(self, app: Any, port: int = 0, host: str = HOST) -> None:
        self._host = host
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self._host}:{self._server.config.port}")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{_connect_host(self._host)}:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class DynamoDBThread:
    """moto's server on a free (or given) port of loopback (or of ``host``): the embedded DynamoDB of the local run
    and the tests, and their S3 (one moto server answers for every service, by the service each request is signed
    for: a presigned URL's included)."""

    def __init__(self, port: int = 0, host: str = HOST) -> None:
        from moto.server import ThreadedMotoServer

        _one_dynamodb_request_at_a_time()
        _transactions_back_up_their_items_not_their_tables()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per DynamoDB call otherwise
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._address = (host, port)

    def start(self) -> DynamoDBThread:
        if self._address[1]:  # moto's server would wait forever for a port that is taken
            _ensure_free(*self._address)
        self._server.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{_connect_host(host)}:{port}"

    def stop(self) -> None:
        self._server.stop()


def _one_dynamodb_request_at_a_time() -> None:
    """moto copies every table a transaction touches when the transaction starts and puts the copy back when it
    fails, so a write another request made in between is lost (two regenerates at once lost the winner's answer this
    way). DynamoDB itself has no such window: here moto takes its DynamoDB requests one at a time."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "one_at_a_time", False):
        return
    lock = threading.RLock()
    call_action = DynamoHandler.call_action

    def one_at_a_time(self: Any) -> Any:
        with lock:
            return call_action(self)

    one_at_a_time.one_at_a_time = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]


def _transactions_back_up_their_items_not_their_tables() -> None:
    """moto backs a transaction up by deep-copying each table it touches, once per item, so a transaction's cost grows
    with the table: late in the test suite (thousands of items) one took over the relay's 4-second bound, and a long
    `make dev` would slow the same way. Requests are taken one at a time (above), so the items a transaction names
    are all it can change: those are backed up instead, and put back if it fails."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "items_backed_up", False):
        return
    transact_write_items = backend.transact_write_items

    class TablesUncopied:
        """The ``copy`` module as moto's backend sees it, except that a table "copied" is the table itself."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def items_backed_up(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = []
        for entry in transact_items:
            try:
                operation = next(iter(entry.values()))
                table = self.tables[operation["TableName"]]
                key = operation.get("Key") or {name: operation["Item"][name]
                                               for name in (table.hash_key_attr, table.range_key_attr) if name}
                backups.append((table.name, key, copy.deepcopy(self.get_item(table.name, key))))
            except Exception:  # malformed: moto's own checks answer it, having changed nothing
                continue
        try:
            transact_write_items(self, transact_items)
        except Exception:
            for table_name, key, item in reversed(backups):
                self.delete_item(table_name, key)
                if item is not None:
                    self.put_item(table_name, item.to_json()["Attributes"])
            raise

    items_backed_up.items_backed_up = True  # type: ignore[attr-defined]
    setattr(models, "copy", TablesUncopied())  # noqa: B010 - the module's own name for copy, replaced
    backend.transact_write_items = items_backed_up  # type: ignore[method-assign]


def _ensure_free(host: str, port: int) -> None:
    if first_taken([(host, port)]) is not None:
        raise RuntimeError(f"{host}:{port} is taken: stop what uses it, or pick another port (0 for any free one)")


def first_taken(addresses: Sequence[tuple[str, int]]) -> int | None:
    """The index of the first of these ``(host, port)`` that cannot be listened on now: in use, or the same port as
    one before it. Port 0 (any free port) never is."""
    with ExitStack() as probes:
        for index, (host, port) in enumerate(addresses):
            if not port:
                continue
            probe = probes.enter_context(socket.socket())
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no owner
            try:
                probe.bind((host, port))
                probe.listen()  # two listeners never share a port, SO_REUSEADDR or not: a port asked twice shows
            except OSError:
                return index
    return None


def free_port_after(host: str, port: int, avoid: Collection[int] = ()) -> int:
    """The first port above ``port`` that is free now and not in ``avoid`` (the ports other servers are to take)."""
    candidate = port + 1
    while candidate in avoid or first_taken([(host, candidate)]) is not None:
        candidate += 1
    return candidate


def dynamodb_client(url: str) -> Any:
    """A boto3 client of the embedded DynamoDB at ``url`` (its credentials and region are placeholders)."""
    import boto3

    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def s3_client(url: str) -> Any:
    """A boto3 client of the embedded S3 at ``url``."""
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def create_bucket(client: Any, bucket: str, allowed_origins: list[str]) -> None:
    """The attachments bucket as template.yaml defines it, as far as a browser meets it: a PUT from the page's
    origins passes CORS (a test keeps the rules in step with the template's)."""
    client.create_bucket(Bucket=bucket)
    allow_uploads_from(client, bucket, allowed_origins)


def allow_uploads_from(client: Any, bucket: str, origins: list[str]) -> None:
    """The bucket's one CORS rule: these origins may PUT an image with its Content-Type."""
    rule = {"AllowedOrigins": origins, "AllowedMethods": ["PUT"], "AllowedHeaders": ["content-type"],
            "MaxAgeSeconds": 600}
    client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})


def create_table(client: Any, table_name: str, *, session_index: bool = False) -> None:
    """A table as template.yaml defines it (a test keeps the two in step): the limits table, or with
    ``session_index`` the chat table."""
    keys = {**TABLE_KEY_SCHEMA, **(SESSION_INDEX_KEY_SCHEMA if session_index else {})}
    indexes = [{
        "IndexName": SESSION_INDEX,
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in SESSION_INDEX_KEY_SCHEMA.items()],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(SESSION_INDEX_ATTRIBUTES)},
    }] if session_index else []
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in keys],
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in TABLE_KEY_SCHEMA.items()],
        BillingMode="PAY_PER_REQUEST",
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
