"""A local OIDC issuer for tests: an RSA and an EC P-256 key pair, their JWKS served over loopback HTTP, and a token
minter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

AUDIENCE = "chat-relay-test"


@dataclass
class SigningKey:
    kid: str
    algorithm: str = "RS256"  # or "ES256": an EC P-256 key
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(init=False)

    def __post_init__(self) -> None:
        self.private = (ec.generate_private_key(ec.SECP256R1()) if self.algorithm == "ES256"
                        else rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.ECAlgorithm if self.algorithm == "ES256" else jwt.algorithms.RSAAlgorithm
        key = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**key, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


class Issuer:
    """Publishes its keys at /.well-known/jwks.json and counts how often they are fetched."""

    def __init__(self) -> None:
        self.keys = [SigningKey("key-1"), SigningKey("ec-key-1", "ES256")]
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
        return jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(header: Any, payload: dict[str, Any] | None = None) -> str:
    """A token with this header (any JSON value, or raw bytes) and a signature of random bytes: what an attacker
    without the issuer's keys can send."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    return f"{b64(encoded)}.{b64(json.dumps(payload or {'sub': 'mallory'}).encode())}.{b64(os.urandom(64))}"


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
