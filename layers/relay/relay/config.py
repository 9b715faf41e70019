"""Settings and limits, in one place: every environment variable the relay reads, by name, with its default.

Grouped by feature, as Powertools' ``shared/constants.py`` groups its own. A value is resolved explicit argument →
environment variable → default: ``Settings(...)`` (or ``dataclasses.replace``) takes arguments, and
``Settings.from_environment`` the environment; the modules that read a setting of their own (auth, telemetry,
tracing) do it through ``resolve``. Provider variables use the names of the providers' own SDKs, so that an existing
shell configuration just works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# Lambda. The runtime sets AWS_LAMBDA_FUNCTION_NAME (the adapter's child process, the app, inherits it): unset, this
# is a local run.
AWS_LAMBDA_FUNCTION_NAME_ENV = "AWS_LAMBDA_FUNCTION_NAME"
FUNCTION_TIMEOUT_ENV = "FUNCTION_TIMEOUT_SECONDS"
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 300.0  # template.yaml's Timeout: the deadline when no Lambda context says one
DEADLINE_MARGIN_ENV = "DEADLINE_MARGIN_SECONDS"
DEFAULT_DEADLINE_MARGIN_SECONDS = 5.0  # stop this long before Lambda's deadline, to store the answer and say so

# Authentication (relay/auth.py). The template's AuthMode defaults to jwt; an app started without AUTH_MODE (a test,
# the local run) has none, which on Lambda is refused unless ALLOW_UNAUTHENTICATED is "true".
AUTH_MODE_ENV = "AUTH_MODE"
DEFAULT_AUTH_MODE = "none"
ALLOW_UNAUTHENTICATED_ENV = "ALLOW_UNAUTHENTICATED"
JWT_ISSUER_ENV = "JWT_ISSUER"
JWT_AUDIENCE_ENV = "JWT_AUDIENCE"
JWT_CLIENT_ID_ENV = "JWT_CLIENT_ID"
JWT_JWKS_URL_ENV = "JWT_JWKS_URL"
DEFAULT_JWKS_PATH = "/.well-known/jwks.json"  # under the issuer: where OIDC discovery and Cognito publish the keys
JWT_TOKEN_USE_ENV = "JWT_TOKEN_USE"

# HTTP: the browser origins allowed by the local run's CORS (on Lambda the function URL's own CORS answers), and the
# input limits: a rejected request gets a 4xx and writes nothing.
CORS_ALLOW_ORIGINS_ENV = "CORS_ALLOW_ORIGINS"
MAX_BODY_BYTES = 64 * 1024
MAX_CONTENT_CHARS = 16_000
MAX_SYSTEM_CHARS = 8_000
MAX_TITLE_CHARS = 200
MAX_MODEL_CHARS = 128

# The chat table (relay/store.py).
TABLE_NAME_ENV = "TABLE_NAME"
DEFAULT_TABLE_NAME = "chat-relay"
MESSAGE_TTL_DAYS_ENV = "MESSAGE_TTL_DAYS"
DEFAULT_MESSAGE_TTL_DAYS = 30
HISTORY_MAX_MESSAGES_ENV = "HISTORY_MAX_MESSAGES"
DEFAULT_HISTORY_MAX_MESSAGES = 20
HISTORY_MAX_CHARS_ENV = "HISTORY_MAX_CHARS"
DEFAULT_HISTORY_MAX_CHARS = 48_000
DEFAULT_SESSIONS_PAGE = 20  # GET /sessions without ?limit=
MAX_SESSIONS_PAGE = 100
# DynamoDB answers in single-digit milliseconds; botocore's defaults (60 s to connect, 60 s to read, retried) would
# hold a request for minutes while a table hangs. Each call gets 1 s to connect and 2 s to read, 3 attempts, and the
# whole call at most 4 s: under DEADLINE_MARGIN_SECONDS (5), so the final write of an answer fits before the
# function's deadline, and another route answers 503 within that bound.
STORE_CONNECT_TIMEOUT_SECONDS = 1.0
STORE_READ_TIMEOUT_SECONDS = 2.0
STORE_MAX_ATTEMPTS = 3
STORE_CALL_TIMEOUT_SECONDS = 4.0
STORE_RETRY_AFTER_SECONDS = 5  # Retry-After of a 503 store_unavailable

# Session titles (relay/titles.py). TITLE_MODEL is "<provider>/<model>" (split at the first "/": a Bedrock ARN keeps
# its own) that names a session after its first answer; unset, a session keeps the title its first message gave it.
TITLE_MODEL_ENV = "TITLE_MODEL"
TITLE_CHARS = 60  # a title made from the first message: about one line of a conversation list
# A model-made title waits at most this long after `done` (the stream closes then), and never past the deadline.
TITLE_TIMEOUT_SECONDS = 10.0

# Limits and budgets (relay/limits.py, relay/usage.py), kept in the limits table: unset, no limit applies.
LIMITS_TABLE_NAME_ENV = "LIMITS_TABLE_NAME"
RATE_LIMIT_REQUESTS_ENV = "RATE_LIMIT_REQUESTS_PER_MINUTE"
DEFAULT_REQUESTS_PER_MINUTE = 20
RATE_LIMIT_STREAMS_ENV = "RATE_LIMIT_CONCURRENT_STREAMS"
DEFAULT_CONCURRENT_STREAMS = 3
# A stream lease lives this long unless its run renews it (every third of it): a crashed run's lease is free again
# within 30 s, not at the end of the function's 300 s timeout. It never outlives the run's deadline plus this margin.
STREAM_LEASE_SECONDS = 30
STREAM_LEASE_DEADLINE_MARGIN_SECONDS = 10
# Tokens (input and output) a user may spend per UTC day and per UTC month; 0, the default, turns a budget off.
TOKEN_BUDGET_PER_DAY_ENV = "TOKEN_BUDGET_PER_DAY"
TOKEN_BUDGET_PER_MONTH_ENV = "TOKEN_BUDGET_PER_MONTH"

# A turn's clocks and its client (relay/turn.py, relay/reader.py).
FIRST_TOKEN_TIMEOUT_ENV = "FIRST_TOKEN_TIMEOUT_SECONDS"
DEFAULT_FIRST_TOKEN_TIMEOUT_SECONDS = 30.0  # the provider's first token, or the turn fails with provider_timeout
IDLE_TIMEOUT_ENV = "IDLE_TIMEOUT_SECONDS"
DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0  # silence between two batches
CHECKPOINT_SECONDS_ENV = "CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 1.0  # the text so far is stored this often while streaming: a crash loses at most this
ON_CLIENT_DISCONNECT_ENV = "ON_CLIENT_DISCONNECT"
ON_DISCONNECT_FINISH = "finish"  # read the provider to the end and store the whole answer (the default)
ON_DISCONNECT_CANCEL = "cancel"  # close the upstream request and store what arrived as interrupted

# Providers (relay/providers/): keys and endpoints by the names their official SDKs read.
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_API_KEY_ENV = "ANTHROPIC_API_KEY"
ANTHROPIC_BASE_URL_ENV = "ANTHROPIC_BASE_URL"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
# The room a Claude answer has (Anthropic's max_tokens is required); a thinking budget comes on top of it.
ANTHROPIC_MAX_TOKENS_ENV = "ANTHROPIC_MAX_TOKENS"
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096
GEMINI_API_KEY_ENV = "GEMINI_API_KEY"
GOOGLE_API_KEY_ENV = "GOOGLE_API_KEY"  # the Gemini SDK's other name for the same key
GEMINI_BASE_URL_ENV = "GOOGLE_GEMINI_BASE_URL"
DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
AZURE_OPENAI_ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"  # unset: Azure OpenAI is not configured
AZURE_OPENAI_API_KEY_ENV = "AZURE_OPENAI_API_KEY"
OPENAI_API_VERSION_ENV = "OPENAI_API_VERSION"  # set: Azure's classic deployment URLs; unset: its v1 base URL
SIMULATED_PROVIDER_URL_ENV = "SIMULATED_PROVIDER_URL"  # the local run's simulated provider (devtools/)
# A JSON secret whose fields are the key variables above: where a key not in the environment is looked for.
PROVIDER_KEYS_SECRET_ARN_ENV = "PROVIDER_KEYS_SECRET_ARN"
# Models offered per provider by GET /providers, and the only ones a session may use: comma-separated, e.g.
# ANTHROPIC_MODELS=claude-sonnet-4-5. "*" in the list lets a session name any model (never listed itself); an empty
# list too, where the names are the operator's own (Azure OpenAI deployments when AZURE_OPENAI_MODELS is unset).
MODELS_ENV_SUFFIX = "_MODELS"
ANY_MODEL = "*"
DEFAULT_MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1"],
    "openai-responses": ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1"],
    "anthropic": ["claude-haiku-4-5", "claude-sonnet-4-5"],
    "gemini": ["gemini-2.5-flash", "gemini-2.5-pro"],
    "azure-openai": [],  # deployment names are your own: AZURE_OPENAI_MODELS
    "bedrock": [],  # model or inference profile ids: BEDROCK_MODELS (also what makes Bedrock offered at all)
    # Any model name: its parameters are the scenario (devtools/simulated_provider.py).
    "simulated": ["sim", "sim:first_token_ms=800,tokens_per_second=15,tokens=120", "sim:fault=error_after,fault_at=8",
                  "sim:reasoning=60,tokens_per_second=30,tokens=80", "*"],
}
PROVIDER_READ_TIMEOUT_ENV = "PROVIDER_READ_TIMEOUT_SECONDS"
DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS = 60.0
PROVIDER_CONNECT_TIMEOUT_SECONDS = 10.0
PROVIDER_MAX_RETRIES_ENV = "PROVIDER_MAX_RETRIES"
DEFAULT_PROVIDER_MAX_RETRIES = 2  # before the first token only: connection errors, 429, 5xx
RETRY_BASE_SECONDS = 0.5  # jittered exponential backoff: 0.5, 1, 2 ... seconds, at most RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 8.0
MAX_FALLBACKS = 3
# "on": connections to the providers are opened ahead, while the store read is in flight (relay/connections.py).
PROVIDER_PRECONNECT_ENV = "PROVIDER_PRECONNECT"
# An idle provider connection is dropped after this, before the other side drops it unseen: under the 60 s idle
# timeout of AWS's and most load balancers (nginx 75 s; Cloudflare, in front of OpenAI and Anthropic, 400 s; Google's
# front ends 610 s; an AWS NAT ~350 s). A server that closes sooner (uvicorn: 5 s) says so, and the pool sees it.
PROVIDER_KEEPALIVE_SECONDS = 55.0

# Image attachments (relay/attachments.py). The S3 bucket images are uploaded to (template.yaml's AttachmentsBucket);
# unset, attachments are off. Its endpoint is botocore's own AWS_ENDPOINT_URL_S3 (the local run's moto).
ATTACHMENTS_BUCKET_ENV = "ATTACHMENTS_BUCKET"
# Which models take images, beyond each provider's defaults (relay/providers/*.py: takes_images): comma-separated
# "<provider>/<model>" entries, a trailing "*" matching any model that starts with what precedes it, e.g.
# IMAGE_MODELS=openai/llava-*  TEXT_ONLY_MODELS=bedrock/us.amazon.nova-micro-*. TEXT_ONLY_MODELS wins over both.
IMAGE_MODELS_ENV = "IMAGE_MODELS"
TEXT_ONLY_MODELS_ENV = "TEXT_ONLY_MODELS"
# The images one provider request carries: the new message's, then earlier messages' newest first, a message's
# images all or none (a message whose images do not fit is sent as text, and so is every older one).
HISTORY_MAX_IMAGES_ENV = "HISTORY_MAX_IMAGES"
DEFAULT_HISTORY_MAX_IMAGES = 8
HISTORY_MAX_IMAGE_BYTES_ENV = "HISTORY_MAX_IMAGE_BYTES"
DEFAULT_HISTORY_MAX_IMAGE_BYTES = 12_000_000
# Each image within the smallest provider cap: Bedrock Converse takes images of at most 3.75 MB (and 20 a request),
# Anthropic 5 MiB of base64 (3.93 MB of image), OpenAI 50 MB a request; Gemini takes 20 MB of inline data in a whole
# request, base64 included (4/3 of the bytes). So a request carries at most 12 MB of images (16 MB of base64,
# leaving 4 MB for the text, whose history is capped at 48,000 characters) and 8 of them. The page (web/
# attachments.js) checks the same caps first; a test keeps them equal.
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_IMAGE_BYTES = 3_750_000
MAX_IMAGES_PER_MESSAGE = 4
MAX_MESSAGE_IMAGE_BYTES = 12_000_000
# A presigned upload URL lives this long: enough to send a few images on a slow line, too short to be passed around.
UPLOAD_URL_SECONDS = 300

# Logs, metrics and traces (relay/telemetry.py, relay/tracing.py). The service and namespace are Powertools' own
# variables; the dashboard reads the template's values of them.
SERVICE_NAME_ENV = "POWERTOOLS_SERVICE_NAME"
DEFAULT_SERVICE_NAME = "chat-relay"
METRICS_NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_METRICS_NAMESPACE = "ChatRelay"
# The model as a metric dimension: "listed" keeps a provider's listed models and counts any other as "other", so
# clients cannot create CloudWatch metrics at will (each is billed); "any" keeps every name (the local run's
# simulated scenarios).
METRICS_MODEL_DIMENSION_ENV = "METRICS_MODEL_DIMENSION"
OTHER_MODEL = "other"
# "true" (the template's EnableTracing): X-Ray subsegments through Powertools Tracer. Off, neither is imported.
TRACING_ENABLED_ENV = "TRACING_ENABLED"
# Where the X-Ray SDK looks for the invocation's trace id, which the app itself sets under the Web Adapter.
TRACE_ID_ENV = "_X_AMZN_TRACE_ID"


def resolve(name: str, default: str, argument: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """A setting as text: ``argument`` when given, else the environment variable ``name`` when set and not empty (in
    ``environ``, the process's by default), else ``default``."""
    if argument is not None:
        return argument
    env = os.environ if environ is None else environ
    return env.get(name) or default


def on_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a Lambda function (as opposed to a local run or a test)."""
    return bool(resolve(AWS_LAMBDA_FUNCTION_NAME_ENV, "", environ=environ))


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str = DEFAULT_TABLE_NAME
    openai_api_key: str | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    anthropic_api_key: str | None = None
    anthropic_base_url: str = DEFAULT_ANTHROPIC_BASE_URL
    anthropic_max_tokens: int = DEFAULT_ANTHROPIC_MAX_TOKENS
    gemini_api_key: str | None = None
    gemini_base_url: str = DEFAULT_GEMINI_BASE_URL
    azure_openai_endpoint: str | None = None
    azure_openai_api_key: str | None = None
    openai_api_version: str | None = None
    simulated_provider_url: str | None = None
    provider_keys_secret_arn: str | None = None
    history_max_messages: int = DEFAULT_HISTORY_MAX_MESSAGES
    history_max_chars: int = DEFAULT_HISTORY_MAX_CHARS
    limits_table_name: str | None = None
    requests_per_minute: int = 0  # 0: no limit
    concurrent_streams: int = 0  # 0: no limit
    cors_allow_origins: tuple[str, ...] = ()
    message_ttl_days: int = DEFAULT_MESSAGE_TTL_DAYS
    provider_read_timeout_seconds: float = DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS
    first_token_timeout_seconds: float = DEFAULT_FIRST_TOKEN_TIMEOUT_SECONDS
    idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    deadline_margin_seconds: float = DEFAULT_DEADLINE_MARGIN_SECONDS
    function_timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT_SECONDS
    on_client_disconnect: str = ON_DISCONNECT_FINISH
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    provider_max_retries: int = DEFAULT_PROVIDER_MAX_RETRIES
    provider_preconnect: bool = True
    models: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MODELS.items()})
    metrics_any_model: bool = False
    token_budget_per_day: int = 0  # 0: no budget
    token_budget_per_month: int = 0
    title_model: tuple[str, str] | None = None  # (provider, model)
    attachments_bucket: str | None = None  # None: no image attachments
    image_models: tuple[str, ...] = ()  # "<provider>/<model>" entries that take images (a trailing "*": a prefix)
    text_only_models: tuple[str, ...] = ()  # ... that do not
    history_max_images: int = DEFAULT_HISTORY_MAX_IMAGES
    history_max_image_bytes: int = DEFAULT_HISTORY_MAX_IMAGE_BYTES

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            table_name=env.get(TABLE_NAME_ENV) or DEFAULT_TABLE_NAME,
            openai_api_key=env.get(OPENAI_API_KEY_ENV) or None,
            openai_base_url=env.get(OPENAI_BASE_URL_ENV) or DEFAULT_OPENAI_BASE_URL,
            anthropic_api_key=env.get(ANTHROPIC_API_KEY_ENV) or None,
            anthropic_base_url=env.get(ANTHROPIC_BASE_URL_ENV) or DEFAULT_ANTHROPIC_BASE_URL,
            anthropic_max_tokens=_positive_int(env, ANTHROPIC_MAX_TOKENS_ENV, DEFAULT_ANTHROPIC_MAX_TOKENS),
            gemini_api_key=env.get(GEMINI_API_KEY_ENV) or env.get(GOOGLE_API_KEY_ENV) or None,
            gemini_base_url=env.get(GEMINI_BASE_URL_ENV) or DEFAULT_GEMINI_BASE_URL,
            azure_openai_endpoint=env.get(AZURE_OPENAI_ENDPOINT_ENV) or None,
            azure_openai_api_key=env.get(AZURE_OPENAI_API_KEY_ENV) or None,
            openai_api_version=env.get(OPENAI_API_VERSION_ENV) or None,
            simulated_provider_url=env.get(SIMULATED_PROVIDER_URL_ENV) or None,
            provider_keys_secret_arn=env.get(PROVIDER_KEYS_SECRET_ARN_ENV) or None,
            history_max_messages=_positive_int(env, HISTORY_MAX_MESSAGES_ENV, DEFAULT_HISTORY_MAX_MESSAGES),
            history_max_chars=_positive_int(env, HISTORY_MAX_CHARS_ENV, DEFAULT_HISTORY_MAX_CHARS),
            limits_table_name=env.get(LIMITS_TABLE_NAME_ENV) or None,
            requests_per_minute=_count(env, RATE_LIMIT_REQUESTS_ENV, DEFAULT_REQUESTS_PER_MINUTE),
            concurrent_streams=_count(env, RATE_LIMIT_STREAMS_ENV, DEFAULT_CONCURRENT_STREAMS),
            cors_allow_origins=tuple(o.strip() for o in (env.get(CORS_ALLOW_ORIGINS_ENV) or "").split(",")
                                     if o.strip()),
            message_ttl_days=_positive_int(env, MESSAGE_TTL_DAYS_ENV, DEFAULT_MESSAGE_TTL_DAYS),
            provider_read_timeout_seconds=_positive_float(
                env, PROVIDER_READ_TIMEOUT_ENV, DEFAULT_PROVIDER_READ_TIMEOUT_SECONDS
            ),
            first_token_timeout_seconds=_positive_float(env, FIRST_TOKEN_TIMEOUT_ENV,
                                                        DEFAULT_FIRST_TOKEN_TIMEOUT_SECONDS),
            idle_timeout_seconds=_positive_float(env, IDLE_TIMEOUT_ENV, DEFAULT_IDLE_TIMEOUT_SECONDS),
            deadline_margin_seconds=_positive_float(env, DEADLINE_MARGIN_ENV, DEFAULT_DEADLINE_MARGIN_SECONDS),
            function_timeout_seconds=_positive_float(env, FUNCTION_TIMEOUT_ENV, DEFAULT_FUNCTION_TIMEOUT_SECONDS),
            checkpoint_seconds=_positive_float(env, CHECKPOINT_SECONDS_ENV, DEFAULT_CHECKPOINT_SECONDS),
            provider_max_retries=_count(env, PROVIDER_MAX_RETRIES_ENV, DEFAULT_PROVIDER_MAX_RETRIES),
            on_client_disconnect=_choice(env, ON_CLIENT_DISCONNECT_ENV, (ON_DISCONNECT_FINISH, ON_DISCONNECT_CANCEL)),
            provider_preconnect=_choice(env, PROVIDER_PRECONNECT_ENV, ("on", "off")) == "on",
            models={name: _models(env, name, default) for name, default in DEFAULT_MODELS.items()},
            metrics_any_model=_choice(env, METRICS_MODEL_DIMENSION_ENV, ("listed", "any")) == "any",
            token_budget_per_day=_count(env, TOKEN_BUDGET_PER_DAY_ENV, 0),
            token_budget_per_month=_count(env, TOKEN_BUDGET_PER_MONTH_ENV, 0),
            title_model=_provider_model(env, TITLE_MODEL_ENV),
            attachments_bucket=env.get(ATTACHMENTS_BUCKET_ENV) or None,
            image_models=_model_patterns(env, IMAGE_MODELS_ENV),
            text_only_models=_model_patterns(env, TEXT_ONLY_MODELS_ENV),
            history_max_images=_positive_int(env, HISTORY_MAX_IMAGES_ENV, DEFAULT_HISTORY_MAX_IMAGES),
            history_max_image_bytes=_positive_int(env, HISTORY_MAX_IMAGE_BYTES_ENV, DEFAULT_HISTORY_MAX_IMAGE_BYTES),
        )


    def takes_images(self, provider: str, model: str, by_default: bool) -> bool:
        """Whether a model takes images: TEXT_ONLY_MODELS says no, IMAGE_MODELS yes, else the provider's default."""
        if _matches(self.text_only_models, provider, model):
            return False
        return by_default or _matches(self.image_models, provider, model)


def models_variable(provider: str) -> str:
    """The variable that lists a provider's models: OPENAI_MODELS, AZURE_OPENAI_MODELS, ..."""
    return provider.upper().replace("-", "_") + MODELS_ENV_SUFFIX


def _models(env: Mapping[str, str], provider: str, default: list[str]) -> list[str]:
    raw = env.get(models_variable(provider))
    if raw is None:
        return list(default)
    return [model.strip() for model in raw.split(",") if model.strip()]


def _provider_model(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    provider, _, model = raw.partition("/")
    if not provider or not model:
        raise ValueError(f"{name} must be <provider>/<model>, e.g. openai/gpt-4o-mini, got {raw!r}")
    if provider not in DEFAULT_MODELS:
        raise ValueError(f"{name} names {provider!r}, which is not one of: {', '.join(sorted(DEFAULT_MODELS))}")
    return provider, model


def _model_patterns(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    patterns = tuple(entry.strip() for entry in (env.get(name) or "").split(",") if entry.strip())
    for pattern in patterns:
        provider, _, model = pattern.partition("/")
        if provider not in DEFAULT_MODELS or not model:
            raise ValueError(f"{name} entries must be <provider>/<model> (a trailing * for a prefix), with a provider "
                             f"of: {', '.join(sorted(DEFAULT_MODELS))}; got {pattern!r}")
    return patterns


def _matches(patterns: tuple[str, ...], provider: str, model: str) -> bool:
    name = f"{provider}/{model}"
    return any(name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern for pattern in patterns)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number (0 for no limit), got {raw!r}")
    return int(raw)


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
