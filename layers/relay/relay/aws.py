"""The relay's AWS clients (DynamoDB, S3): botocore's, created in a thread of their own, and calls bounded in time.

botocore straight away: boto3 would also import s3transfer, ~90 ms of cold start for nothing used here. Endpoint
(``AWS_ENDPOINT_URL_<SERVICE>``), region and credentials resolve as boto3 would resolve them. Each call runs in a
worker thread, so the event loop keeps relaying tokens, and is bounded twice: botocore's connect and read timeouts
with a few attempts, and a budget for the whole call (``config.STORE_CALL_TIMEOUT_SECONDS``), so a service that
hangs costs a request seconds, never minutes. Any failure is a ``StoreError``; ``error_code`` reads AWS's code
behind one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from relay import config, telemetry
from relay.errors import StoreError

__all__ = ["BoundedClient", "create_client", "error_code", "error_response"]

T = TypeVar("T")


def create_client(service: str, **settings: Any) -> Any:
    """A botocore client of ``service`` with the store's bounds: 1 s to connect, 2 s to read, 3 attempts (see
    config.py); ``settings`` adds to botocore's Config (S3's signature version, say)."""
    import botocore.session
    from botocore.config import Config

    bounded = Config(retries={"mode": "standard", "max_attempts": config.STORE_MAX_ATTEMPTS},
                     connect_timeout=config.STORE_CONNECT_TIMEOUT_SECONDS,
                     read_timeout=config.STORE_READ_TIMEOUT_SECONDS, **settings)
    return botocore.session.get_session().create_client(service, config=bounded)


class BoundedClient:
    """One client per process, created in the background, and calls that raise ``StoreError`` on any failure."""

    service = "AWS"  # how failures name it

    def __init__(self, client_factory: Callable[[], Any],
                 call_timeout: float = config.STORE_CALL_TIMEOUT_SECONDS) -> None:
        self._client_factory = client_factory
        self._client_future: Future[Any] | None = None
        self._calls = 0  # started so far: the first connection is opened ahead only while none is
        self.call_timeout = call_timeout

    def connect(self, warm_up: Callable[[Any], object] | None = None) -> None:
        """Starts creating the client in a thread of its own (it takes over 100 ms): the app starts it once it is
        serving, where the thread does not compete with start-up for the interpreter lock. Then, unless a call has
        started meanwhile, makes ``warm_up``'s call with it: the first connection (TCP and TLS) and the first call's
        lazy imports are then done before the first request's call needs them. The first call waits for the
        client; a call before ``connect()`` starts it."""
        if self._client_future is None:
            worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.service.lower())
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
            telemetry.logger.debug(f"the {self.service} warm-up call failed", extra={"error": type(exc).__name__})

    async def call(self, operation: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """``operation`` on the client, within ``timeout`` seconds (the call's budget by default). A call cut off
        by the budget may still land later: every write the relay makes is safe to land late (puts of whole items,
        conditional updates, deletes)."""
        return await self.run(lambda client: getattr(client, operation)(**kwargs), operation, timeout=timeout)

    async def run(self, work: Callable[[Any], T], name: str, *, timeout: float | None = None) -> T:
        """``work(client)`` in a worker thread within the budget: a call and what reads its answer (an object's
        body) bounded as one."""
        self._calls += 1
        self.connect()
        assert self._client_future is not None
        try:
            async with asyncio.timeout(self.call_timeout if timeout is None else timeout):
                client = await asyncio.wrap_future(self._client_future)
                return await asyncio.to_thread(work, client)
        except TimeoutError:
            raise StoreError(f"{self.service} {name} did not answer in time") from None
        except Exception as exc:  # botocore raises many unrelated types
            raise StoreError(f"{self.service} {name} failed: {type(exc).__name__}") from exc


def error_response(exc: StoreError) -> dict[str, Any]:
    """The AWS error response behind a StoreError; empty for errors that have none (a read timeout's ``response``
    is None, a connection error has no such attribute)."""
    response = getattr(exc.__cause__, "response", None)
    return response if isinstance(response, dict) else {}


def error_code(exc: StoreError) -> str | None:
    """AWS's error code behind a StoreError ("ConditionalCheckFailedException", "NoSuchKey", "404", ...)."""
    code = error_response(exc).get("Error", {}).get("Code")
    return str(code) if code is not None else None
