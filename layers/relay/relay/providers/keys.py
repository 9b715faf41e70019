"""Where a provider's API key comes from: the environment variable its own SDK reads (``OPENAI_API_KEY``, ...),
else the field of that name in the JSON secret named by ``PROVIDER_KEYS_SECRET_ARN`` (Secrets Manager, read through
Powertools Parameters and cached, so a deployment never puts keys in its environment).

The secret is read within the store's bounds (``config.STORE_*``: 1 s to connect, 2 s to read, 3 attempts, 4 s in
all): with botocore's defaults (60 s each, retried) a Secrets Manager that hangs held ``GET /providers`` for minutes.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any, Protocol

from relay import config
from relay.errors import PROVIDER_AUTH, ProviderError

SECRET_MAX_AGE_SECONDS = 300


class KeySource(Protocol):
    variable: str

    async def get(self) -> str | None: ...


class StaticKey:
    def __init__(self, variable: str, value: str | None) -> None:
        self.variable = variable
        self.value = value

    async def get(self) -> str | None:
        return self.value


class SecretKey:
    def __init__(self, variable: str, secret_arn: str) -> None:
        self.variable = variable
        self._secret_arn = secret_arn

    async def get(self) -> str | None:
        try:
            async with asyncio.timeout(config.STORE_CALL_TIMEOUT_SECONDS):
                return await asyncio.to_thread(self._read)
        except TimeoutError:
            raise ProviderError(PROVIDER_AUTH, f"the provider keys secret did not answer in time for "
                                               f"{self.variable}") from None

    def _read(self) -> str | None:
        try:
            keys = _secrets().get(self._secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
        except Exception as exc:  # never let the secret's content or ARN details reach the client
            message = f"the provider keys secret could not be read for {self.variable}"
            raise ProviderError(PROVIDER_AUTH, message) from exc
        value = keys.get(self.variable) if isinstance(keys, dict) else None
        return value if isinstance(value, str) and value else None


@cache
def _secrets() -> Any:
    """Powertools' Secrets Manager provider, one per process (its cache), with the store's timeouts."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.config import Config

    bounded = Config(retries={"mode": "standard", "max_attempts": config.STORE_MAX_ATTEMPTS},
                     connect_timeout=config.STORE_CONNECT_TIMEOUT_SECONDS,
                     read_timeout=config.STORE_READ_TIMEOUT_SECONDS)
    return parameters.SecretsProvider(boto_config=bounded)


def key_source(variable: str, environment_value: str | None, secret_arn: str | None) -> KeySource:
    if environment_value or not secret_arn:
        return StaticKey(variable, environment_value or None)
    return SecretKey(variable, secret_arn)
