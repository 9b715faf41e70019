"""JWT authentication and session ownership over real loopback HTTP: a local issuer publishes its JWKS, the app
verifies tokens against it, and every rejected request writes nothing."""

import time
from collections.abc import Iterator

import httpx
import pytest

from devtools.local_run import TABLE_NAME
from devtools.servers import UvicornThread
from relay import auth
from relay.app import create_app
from relay.auth import ConfigurationError, JwtAuthenticator, JwtSettings, authenticator_from_environment
from relay.store import ChatStore
from tests.auth_fixtures import (
    AUDIENCE,
    HOSTILE_TOKEN_CASES,
    Issuer,
    SigningKey,
    hostile_tokens,
    hs256_with_public_key,
    tampered,
    unsigned_token,
)
from tests.helpers import count_items, stream_chat

SESSION = {"provider": "simulated", "model": "sim:first_token_ms=0,tokens_per_second=0,tokens=3"}


@pytest.fixture(scope="module")
def relay_url(stack, issuer, dynamodb) -> Iterator[str]:
    settings = JwtSettings(issuer=issuer.url, jwks_url=issuer.url + "/.well-known/jwks.json", audience=AUDIENCE)
    app = create_app(store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: dynamodb),
                     authenticator=lambda http: JwtAuthenticator(settings, http))
    server = UvicornThread(app).start()
    yield server.url
    server.stop()


@pytest.fixture()
def relay(relay_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay_url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_is_accepted(relay, issuer):
    response = relay.post("/sessions", json=SESSION, headers=bearer(issuer.token()))
    assert response.status_code == 201


def forged_tokens(issuer: Issuer) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": "mallory", "aud": AUDIENCE, "exp": now + 600}
    return {
        "expired": issuer.token(exp=now - 120),
        "not yet valid": issuer.token(nbf=now + 120),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "wrong audience": issuer.token(aud="another-app"),
        "alg none": unsigned_token(claims, issuer.keys[0].kid),
        "HS256 signed with the public key": hs256_with_public_key(claims, issuer.keys[0]),
        "unknown kid": issuer.token(key=SigningKey("not-published")),
        "tampered payload": tampered(issuer.token(sub="user-a"), sub="admin"),
        "no sub": issuer.token(sub=None),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("case", ["expired", "not yet valid", "wrong issuer", "wrong audience", "alg none",
                                  "HS256 signed with the public key", "unknown kid", "tampered payload", "no sub",
                                  "garbage", "missing header", "not bearer"])
@pytest.mark.parametrize("route", ["create", "stream", "list"])
def test_bad_credentials_get_401_and_write_nothing(relay, issuer, dynamodb, case, route):
    if case == "missing header":
        headers = {}
    elif case == "not bearer":
        headers = {"Authorization": f"Basic {issuer.token()}"}
    else:
        headers = bearer(forged_tokens(issuer)[case])
    before = count_items(dynamodb)
    if route == "create":
        response = relay.post("/sessions", json=SESSION, headers=headers)
    elif route == "stream":
        response = relay.post("/chat/stream", json={"chatSessionId": "01HZY00000000000000000DEM0", "content": "hi"},
                              headers=headers)
    else:
        response = relay.get("/sessions/01HZY00000000000000000DEM0/messages", headers=headers)
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert count_items(dynamodb) == before


def test_a_token_from_the_issuers_ec_key_is_accepted(relay, issuer):
    ec_key = next(key for key in issuer.keys if key.algorithm == "ES256")
    response = relay.post("/sessions", json=SESSION, headers=bearer(issuer.token(sub="eve", key=ec_key)))
    assert response.status_code == 201


@pytest.mark.parametrize("case", HOSTILE_TOKEN_CASES)
def test_a_token_with_a_hostile_header_gets_401_and_writes_nothing(relay, issuer, dynamodb, case):
    # GIVEN a token whose header (or whole self) is the attacker's choice, with no valid signature
    token = hostile_tokens(issuer)[case]
    authorization = b"Bearer " + token if isinstance(token, bytes) else f"Bearer {token}"
    before = count_items(dynamodb)
    # WHEN it is presented
    response = relay.post("/sessions", json=SESSION, headers={"Authorization": authorization})
    # THEN it is an ordinary 401, never a 500, and nothing is written
    assert response.status_code == 401, (case, response.text)
    assert response.json()["error"]["code"] == "unauthorized"
    assert count_items(dynamodb) == before


@pytest.mark.parametrize("subject", ["", " ", "x" * 256, "user\x00", "line\nbreak"])
def test_a_signed_token_whose_subject_cannot_own_a_session_gets_401_and_writes_nothing(relay, issuer, dynamodb,
                                                                                       subject):
    # GIVEN a token the issuer signed, whose sub is empty, blank, longer than OpenID's 255 or not printable
    before = count_items(dynamodb)
    # WHEN it is presented on a route that writes, and on one that reads the owner's index
    created = relay.post("/sessions", json=SESSION, headers=bearer(issuer.token(sub=subject)))
    listed = relay.get("/sessions", headers=bearer(issuer.token(sub=subject)))
    # THEN both are 401 (the owner is an index key: an empty one was a 503, from DynamoDB), and nothing is written
    assert (created.status_code, listed.status_code) == (401, 401), (created.text, listed.text)
    assert count_items(dynamodb) == before


def test_another_users_session_answers_404_as_if_it_did_not_exist(relay, issuer):
    alice, bob = bearer(issuer.token(sub="alice")), bearer(issuer.token(sub="bob"))
    chat_session_id = relay.post("/sessions", json=SESSION, headers=alice).json()["chatSessionId"]
    relay.headers.update(alice)
    assert stream_chat(relay, chat_session_id).one("done")

    listed = relay.get(f"/sessions/{chat_session_id}/messages", headers=bob)
    streamed = relay.post("/chat/stream", json={"chatSessionId": chat_session_id, "content": "mine now"},
                          headers=bob)
    unknown = relay.get("/sessions/01HZY0000000000000000NOPE0/messages", headers=bob)
    assert listed.status_code == streamed.status_code == unknown.status_code == 404
    assert listed.json() == unknown.json()
    assert len(relay.get(f"/sessions/{chat_session_id}/messages", headers=alice).json()["messages"]) == 2


def test_jwks_is_cached_and_refreshed_once_for_a_new_kid(relay, issuer, monkeypatch):
    relay.post("/sessions", json=SESSION, headers=bearer(issuer.token()))
    fetched = issuer.fetches
    for _ in range(3):
        assert relay.post("/sessions", json=SESSION, headers=bearer(issuer.token())).status_code == 201
    assert issuer.fetches == fetched  # cached across requests

    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH_SECONDS", 0)
    rotated = SigningKey("key-2")
    issuer.keys.append(rotated)
    assert relay.post("/sessions", json=SESSION, headers=bearer(issuer.token(key=rotated))).status_code == 201
    assert issuer.fetches == fetched + 1


def test_unknown_kids_cannot_make_the_relay_hammer_the_issuer(relay, issuer):
    relay.post("/sessions", json=SESSION, headers=bearer(issuer.token()))
    fetched = issuer.fetches
    for index in range(5):
        token = issuer.token(key=SigningKey(f"junk-{index}"))
        assert relay.post("/sessions", json=SESSION, headers=bearer(token)).status_code == 401
    assert issuer.fetches <= fetched + 1


def test_cognito_client_id_and_token_use_are_checked(stack, issuer):
    import asyncio

    settings = JwtSettings(issuer=issuer.url, jwks_url=issuer.url + "/.well-known/jwks.json", client_id="app-1",
                           token_use="access")

    async def check(token: str) -> str:
        async with httpx.AsyncClient() as http:
            return await JwtAuthenticator(settings, http).user_id({"authorization": f"Bearer {token}"})

    assert asyncio.run(check(issuer.token(aud=None, client_id="app-1", token_use="access"))) == "user-a"
    for wrong in ({"client_id": "app-2", "token_use": "access"}, {"client_id": "app-1", "token_use": "id"}):
        with pytest.raises(auth.Unauthorized):
            asyncio.run(check(issuer.token(aud=None, **wrong)))


def test_auth_mode_none_is_refused_on_lambda_without_consent():
    lambda_env = {"AUTH_MODE": "none", "AWS_LAMBDA_FUNCTION_NAME": "chat"}
    with pytest.raises(ConfigurationError):
        authenticator_from_environment(httpx.AsyncClient(), lambda_env)
    assert isinstance(authenticator_from_environment(httpx.AsyncClient(), {**lambda_env,
                                                                          "ALLOW_UNAUTHENTICATED": "true"}),
                      auth.NoAuthentication)
    with pytest.raises(ConfigurationError):
        authenticator_from_environment(httpx.AsyncClient(), {"AUTH_MODE": "jwt"})  # no issuer
    with pytest.raises(ConfigurationError):
        authenticator_from_environment(httpx.AsyncClient(), {"AUTH_MODE": "jwtt"})


def test_app_refuses_to_start_with_unsafe_auth_settings(monkeypatch):
    monkeypatch.setenv("AUTH_MODE", "none")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chat")
    monkeypatch.delenv("ALLOW_UNAUTHENTICATED", raising=False)
    with pytest.raises(ConfigurationError):
        create_app(store=ChatStore(TABLE_NAME, ttl_days=1, client_factory=lambda: None))


def test_iam_mode_takes_the_caller_from_the_request_context():
    import asyncio
    import json

    context = {"authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/alice", "userId": "AIDA"}}}
    authenticator = authenticator_from_environment(httpx.AsyncClient(), {"AUTH_MODE": "iam"})
    user = asyncio.run(authenticator.user_id({"x-amzn-request-context": json.dumps(context)}))
    assert user == "arn:aws:iam::123456789012:user/alice"
    with pytest.raises(auth.Unauthorized):
        asyncio.run(authenticator.user_id({}))


def test_a_turns_logs_hold_neither_the_token_nor_the_text(relay, issuer, capsys, caplog):
    token = issuer.token(sub="carol")
    relay.headers.update(bearer(token))
    chat_session_id = relay.post("/sessions", json=SESSION).json()["chatSessionId"]
    received = stream_chat(relay, chat_session_id, "SECRET-PROMPT-TEXT")
    output = capsys.readouterr().out + "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "stream ended" in output
    for secret in (token, token.split(".")[2], "SECRET-PROMPT-TEXT", "".join(received.tokens)):
        assert secret not in output


@pytest.mark.parametrize("context", [
    "[" * 5000 + "]" * 5000, '{"authorizer": ' * 5000 + "1" + "}" * 5000, '{"authorizer": []}',
    '{"authorizer": {"iam": "arn:aws:iam::123456789012:user/alice"}}', '{"authorizer": {"iam": {"userArn": ["a"]}}}',
    '{"authorizer": {"iam": {"userArn": ""}}}', "{not json", "7",
])
def test_iam_mode_refuses_a_request_context_no_function_url_would_send(context):
    import asyncio

    authenticator = authenticator_from_environment(httpx.AsyncClient(), {"AUTH_MODE": "iam"})
    with pytest.raises(auth.Unauthorized):
        asyncio.run(authenticator.user_id({"x-amzn-request-context": context}))
