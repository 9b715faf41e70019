"""Who is calling: the authenticated user of a request, by the deployment's auth mode (``AUTH_MODE``).

    jwt   ``Authorization: Bearer <token>``, verified against an OIDC issuer's JWKS with PyJWT: pinned algorithms
          (and only the one its key's type takes: RS256 for RSA, ES256 for EC P-256), signature, exp/nbf with a
          small leeway, iss, aud (or Cognito's client_id), token_use. The template's default (an app started
          without AUTH_MODE, as the local run and the tests are, has none).
    iam   the function URL is AWS_IAM, usually behind CloudFront Origin Access Control, which owns the
          Authorization header: the user's token travels in ``X-User-Authorization`` (verified as above) when an
          issuer is configured, else the caller is the IAM principal from the request context.
    none  no authentication: everyone is one local user. Refused on Lambda unless ALLOW_UNAUTHENTICATED=true.

The user id is the token's ``sub`` (or the IAM principal). Tokens never reach logs or error messages. Whatever a
token holds, a bad one is a 401: its header is the attacker's choice, parsed before any signature is checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from relay import config, json_input
from relay.errors import RelayError

LOCAL_USER = "local-user"
ALGORITHMS = ("RS256", "ES256")  # asymmetric only: an HS256 token "signed" with the public key is refused
# Cognito's tokens are 1-2 KB (a few KB with many groups); a longer one is refused before PyJWT decodes any of it.
MAX_TOKEN_CHARS = 16 * 1024
LEEWAY_SECONDS = 30
JWKS_MIN_REFRESH_SECONDS = 10  # an unknown kid refreshes the keys at most this often: junk cannot flood the issuer
USER_TOKEN_HEADER = "x-user-authorization"
MAX_SUBJECT_CHARS = 255


class Unauthorized(RelayError):
    """When a request carries no valid credentials (401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(RelayError):
    """When the auth settings are unsafe or incomplete; the app refuses to start."""


class Authenticator(Protocol):
    async def user_id(self, headers: Mapping[str, str]) -> str: ...


class NoAuthentication:
    async def user_id(self, headers: Mapping[str, str]) -> str:
        return LOCAL_USER


@dataclass(frozen=True, slots=True)
class JwtSettings:
    issuer: str
    jwks_url: str
    audience: str | None = None
    client_id: str | None = None
    token_use: str | None = None


class JwksCache:
    """The issuer's signing keys, fetched once and kept across invocations; refreshed when an unknown kid appears."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")

    async def key(self, kid: str) -> Any:
        if kid not in self._keys and time.monotonic() - self._fetched_at >= JWKS_MIN_REFRESH_SECONDS:
            await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthorized("the token is signed with an unknown key") from None

    async def _refresh(self) -> None:
        from jwt import PyJWKSet

        self._fetched_at = time.monotonic()
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            jwks = PyJWKSet.from_dict(response.json())
        except Exception as exc:
            raise Unauthorized("the token could not be checked: the issuer's keys are unavailable") from exc
        self._keys = {key.key_id: key for key in jwks.keys if key.key_id}


class JwtAuthenticator:
    def __init__(self, settings: JwtSettings, http: httpx.AsyncClient, header: str = "authorization") -> None:
        self._settings = settings
        self._jwks = JwksCache(settings.jwks_url, http)
        self._header = header

    async def user_id(self, headers: Mapping[str, str]) -> str:
        import jwt

        scheme, _, token = headers.get(self._header, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(f"a bearer token is required in the {self._header.title()} header")
        token = token.strip()
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except Exception:  # DecodeError, or whatever its base64 and JSON layers raise on crafted input: never a 500
            raise Unauthorized("the token is malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise Unauthorized("the token's algorithm is not accepted")
        if not isinstance(kid, str):  # a list or an object would not even be a dictionary key
            raise Unauthorized("the token does not name its signing key")
        key = await self._jwks.key(kid)
        if key.algorithm_name != algorithm:
            # ES256 naming an RSA key (or RS256 an EC key): PyJWT would raise TypeError on the key, not a 401.
            raise Unauthorized("the token's algorithm does not match its key")
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,  # the PyJWK: PyJWT verifies with the algorithm bound to the key, never the token's say-so
                algorithms=[algorithm],
                issuer=settings.issuer,
                audience=settings.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": settings.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet") from None
        except Exception as exc:  # InvalidTokenError, and anything key handling raises on attacker-chosen bytes
            raise Unauthorized(f"the token is not valid ({type(exc).__name__})") from None
        if settings.client_id and settings.client_id not in (claims.get("client_id"), claims.get("aud")):
            raise Unauthorized("the token was issued to another client")
        if settings.token_use and claims.get("token_use") != settings.token_use:
            raise Unauthorized(f"a {settings.token_use} token is required")
        subject = str(claims["sub"])
        # OpenID Connect Core 1.0, 2: "It MUST NOT exceed 255 ASCII characters". It becomes the owner of sessions,
        # a DynamoDB index key, which can be neither empty nor longer than 2,048 bytes.
        if not (0 < len(subject) <= MAX_SUBJECT_CHARS and subject.isprintable() and subject.strip()):
            raise Unauthorized("the token's subject (sub) is empty, too long or not text")
        return subject


class IamAuthentication:
    """The caller of an AWS_IAM function URL, from the request context the adapter forwards."""

    async def user_id(self, headers: Mapping[str, str]) -> str:
        try:
            context = json_input.loads(headers.get("x-amzn-request-context", "{}"))
        except ValueError:
            context = {}
        iam = _member(_member(context, "authorizer"), "iam")
        principal = _member(iam, "userArn") or _member(iam, "userId") or _member(iam, "callerId")
        if not isinstance(principal, str) or not principal:
            raise Unauthorized("no IAM caller: the function URL must use AWS_IAM")
        return principal


def _member(value: Any, name: str) -> Any:
    """``value[name]`` when value is an object: any level of the context may be another JSON type."""
    return value.get(name) if isinstance(value, dict) else None


def jwt_settings(environ: Mapping[str, str] | None = None) -> JwtSettings | None:
    issuer = config.resolve(config.JWT_ISSUER_ENV, "", environ=environ).rstrip("/")
    if not issuer:
        return None
    return JwtSettings(
        issuer=issuer,
        jwks_url=config.resolve(config.JWT_JWKS_URL_ENV, issuer + config.DEFAULT_JWKS_PATH, environ=environ),
        audience=config.resolve(config.JWT_AUDIENCE_ENV, "", environ=environ) or None,
        client_id=config.resolve(config.JWT_CLIENT_ID_ENV, "", environ=environ) or None,
        token_use=config.resolve(config.JWT_TOKEN_USE_ENV, "", environ=environ) or None,
    )


def authenticator_from_environment(http: httpx.AsyncClient, environ: Mapping[str, str] | None = None) -> Authenticator:
    mode = config.resolve(config.AUTH_MODE_ENV, config.DEFAULT_AUTH_MODE, environ=environ).strip().lower()
    settings = jwt_settings(environ)
    if mode == "jwt":
        if settings is None:
            raise ConfigurationError("AUTH_MODE=jwt needs JWT_ISSUER (or a Cognito user pool)")
        return JwtAuthenticator(settings, http)
    if mode == "iam":
        return JwtAuthenticator(settings, http, header=USER_TOKEN_HEADER) if settings else IamAuthentication()
    if mode == "none":
        allowed = config.resolve(config.ALLOW_UNAUTHENTICATED_ENV, "false", environ=environ).lower() == "true"
        if config.on_lambda(environ) and not allowed:
            raise ConfigurationError("AUTH_MODE=none on Lambda needs ALLOW_UNAUTHENTICATED=true")
        return NoAuthentication()
    raise ConfigurationError(f"AUTH_MODE must be jwt, iam or none, not {mode!r}")
