"""Settings and limits, in one place.

A value is resolved explicit argument → environment variable → default. Provider variables use the names of the
providers' own SDKs so that an existing shell configuration just works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Environment variable names.
TABLE_NAME_ENV = "TABLE_NAME"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
SIMULATED_PROVIDER_URL_ENV = "SIMULATED_PROVIDER_URL"
PROVIDER_KEYS_SECRET_ARN_ENV = "PROVIDER_KEYS_SECRET_ARN"
HISTORY_MAX_MESSAGES_ENV = "HISTORY_MAX_MESSAGES"
MESSAGE_TTL_DAYS_ENV = "MESSAGE_TTL_DAYS"
PROVIDER_READ_TIMEOUT_ENV = "PROVIDER_READ_TIMEOUT_SECONDS"

# Defaults.
DEFAULT_TABLE_NAME = "chat-relay"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_HISTORY_MAX_MESSAGES = 20
DEFAULT_MESSAGE_TTL_DAYS = 30
DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS = 60.0
PROVIDER_CONNECT_TIMEOUT_SECONDS = 10.0

# Input limits: a rejected request gets a 4xx and writes nothing.
MAX_BODY_BYTES = 64 * 1024
MAX_CONTENT_CHARS = 16_000
MAX_SYSTEM_CHARS = 8_000
MAX_TITLE_CHARS = 200
MAX_MODEL_CHARS = 128


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str = DEFAULT_TABLE_NAME
    openai_api_key: str | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    simulated_provider_url: str | None = None
    provider_keys_secret_arn: str | None = None
    history_max_messages: int = DEFAULT_HISTORY_MAX_MESSAGES
    message_ttl_days: int = DEFAULT_MESSAGE_TTL_DAYS
    provider_read_timeout_seconds: float = DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            table_name=env.get(TABLE_NAME_ENV) or DEFAULT_TABLE_NAME,
            openai_api_key=env.get(OPENAI_API_KEY_ENV) or None,
            openai_base_url=env.get(OPENAI_BASE_URL_ENV) or DEFAULT_OPENAI_BASE_URL,
            simulated_provider_url=env.get(SIMULATED_PROVIDER_URL_ENV) or None,
            provider_keys_secret_arn=env.get(PROVIDER_KEYS_SECRET_ARN_ENV) or None,
            history_max_messages=_positive_int(env, HISTORY_MAX_MESSAGES_ENV, DEFAULT_HISTORY_MAX_MESSAGES),
            message_ttl_days=_positive_int(env, MESSAGE_TTL_DAYS_ENV, DEFAULT_MESSAGE_TTL_DAYS),
            provider_read_timeout_seconds=_positive_float(
                env, PROVIDER_READ_TIMEOUT_ENV, DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS
            ),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_positive_float(env, name, default))


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value
