"""A local OIDC issuer for tests: an RSA and an EC P-256 key pair, their JWKS served over loopback HTTP, and a token
minter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devtools.servers import UvicornThread

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


def hostile_tokens(issuer: Issuer) -> dict[str, str | bytes]:
    """Tokens whose header is what an attacker chooses, each once a 500 in some JWT library (or this one)."""
    rsa_kid, ec_kid = (next(key.kid for key in issuer.keys if key.algorithm == alg) for alg in ("RS256", "ES256"))
    deep = "[" * 5000 + "]" * 5000
    return {
        "ES256 naming the RSA key": forged_token({"alg": "ES256", "kid": rsa_kid}),
        "RS256 naming the EC key": forged_token({"alg": "RS256", "kid": ec_kid}),
        "kid a list": forged_token({"alg": "RS256", "kid": [rsa_kid]}),
        "kid an object": forged_token({"alg": "RS256", "kid": {"kid": rsa_kid}}),
        "kid a number": forged_token({"alg": "RS256", "kid": 1}),
        "no kid": forged_token({"alg": "RS256"}),
        "alg a list": forged_token({"alg": ["RS256"], "kid": rsa_kid}),
        "header a list": forged_token(["RS256", rsa_kid]),
        "header a string": forged_token("RS256"),
        "header nested 5000 deep": forged_token(deep.encode()),
        "header not JSON": forged_token(b"\xff\xfe{"),
        "non-ASCII kid": forged_token({"alg": "RS256", "kid": "cl\u00e9-\U0001f642"}),
        "unknown critical extension": forged_token({"alg": "RS256", "kid": rsa_kid, "crit": ["exp"]}),
        "huge": issuer.token() + "A" * 100_000,
        "non-ASCII bytes in the token": "h\u00e9ader.p\u00e4yload.s\u00efg".encode("latin-1"),
        "one segment": "eyJhbGciOiJSUzI1NiJ9",
        "empty segments": "..",
    }


HOSTILE_TOKEN_CASES = ["ES256 naming the RSA key", "RS256 naming the EC key", "kid a list", "kid an object",
                       "kid a number", "no kid", "alg a list", "header a list", "header a string",
                       "header nested 5000 deep", "header not JSON", "non-ASCII kid", "unknown critical extension",
                       "huge", "non-ASCII bytes in the token", "one segment", "empty segments"]
