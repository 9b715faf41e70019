"""A local OIDC issuer for tests: an RSA key pair, its JWKS served over loopback HTTP, and a token minter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devtools.servers import UvicornThread

AUDIENCE = "chat-relay-test"


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                         key_size=2048))

    def jwk(self) -> dict[str, Any]:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**key, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


class Issuer:
    """Publishes its keys at /.well-known/jwks.json and counts how often they are fetched."""

    def __init__(self) -> None:
        self.keys = [SigningKey("key-1")]
        self.fetches = 0
        self.url = ""  # set once served
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self.jwks)])

    async def jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": [key.jwk() for key in self.keys]})

    def token(self, sub: str = "user-a", key: SigningKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
        key = key or self.keys[0]
        return jwt.encode(payload, key.private, algorithm="RS256", headers={"kid": key.kid})


@contextmanager
def served_issuer() -> Iterator[Issuer]:
    """An issuer publishing its keys on a free loopback port until the block ends."""
    issuer = Issuer()
    server = UvicornThread(issuer.app).start()
    issuer.url = server.url
    try:
        yield issuer
    finally:
        server.stop()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(payload: dict[str, Any], kid: str) -> str:
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with_public_key(payload: dict[str, Any], key: SigningKey) -> str:
    """The classic algorithm-confusion forgery: HMAC "signed" with the issuer's public key."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid}).encode())}." \
                    f"{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{b64(json.dumps({**claims, **changes}).encode())}.{signature}"
