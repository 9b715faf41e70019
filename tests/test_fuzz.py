"""Property-based fuzzing of every route over real loopback HTTP, in both auth modes a deployment runs (``none``,
and ``jwt`` against a local issuer). Each example starts from a request the route would accept (the caller's token,
its own session and answer, a body of the right shape) and makes some of its parts hostile: the method, the path's
ids, the query (offset, protocol, junk), the headers (junk and forged tokens, Last-Event-ID, Content-Type and
Content-Length, the adapter's context headers, random ones) and the body (malformed, deeply nested, huge numbers,
wrong types, lone surrogates, UTF-16). Starting from a good request lets a hostile part reach as deep as it can. The
routes come from the app's own router, so a new route is fuzzed by itself.

Never a 5xx; a 4xx is a JSON ``{"error": {"code", "message"}}``; and a rejected request writes nothing: no
DynamoDB write to the chat table succeeds while it is served (recorded by botocore's own events on the app's
client), and the stream leases in the limits table are as they were. The limits' request counter is the one write a
rejected request may make: it counts every chat request that names a session, so unknown ids cannot be tried for
free.

Random examples can miss the one value that matters, so every route also gets each hostile value this relay has
met (or that breaks parsers generally) on its own, in a request otherwise good: ``test_every_route_takes_...``.
Derandomized, so CI runs the same examples every time; ``FUZZ_EXAMPLES`` asks for more (or fewer) per route and
mode, and ``pytest --hypothesis-show-statistics`` shows which answers they got.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from devtools.local_run import DEMO_SESSION_ID, LIMITS_TABLE_NAME, TABLE_NAME
from devtools.servers import UvicornThread, create_table
from relay.app import create_app
from relay.auth import LOCAL_USER, JwtAuthenticator, JwtSettings, NoAuthentication
from relay.config import Settings
from relay.store import ChatStore
from tests.auth_fixtures import AUDIENCE, HOSTILE_TOKEN_CASES, Issuer, forged_token, hostile_tokens
from tests.helpers import OneUserOfItsOwn, stream_chat

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FAST_MODEL = "sim:first_token_ms=0,tokens_per_second=0,tokens=3"
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
OTHER_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
# Tables of the fuzz's own, beside the shared stack's: its thousand requests would make the shared ones large, and
# moto copies a whole table at each transaction. tests/test_template.py places "<local name>.<anything>" as the
# local name's table.
FUZZ_TABLE, FUZZ_LIMITS_TABLE = f"{TABLE_NAME}.fuzz", f"{LIMITS_TABLE_NAME}.fuzz"
NONE_MODE_USER, JWT_MODE_USER = "fuzz-local-user", "fuzz-user"  # the callers, each a user of its own
FUZZ_USERS = {f"USER#{user}" for user in (NONE_MODE_USER, JWT_MODE_USER)}

# Hostile values

SHORT_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["", " ", "\x00", "\u2028\u2029\u0085", "🙂" * 50, "data: x\n\nevent: done\n\n"])  # fits in a URL
ODD_TEXT = SHORT_TEXT | st.sampled_from(["\ud800", "x" * 70_000])
ODD_NUMBERS = st.sampled_from(["0", "3", "²", "¹²", "١٢", "１", "-1", "+1", " 1", "1_0", "1e3", "0x1", "9" * 10,
                               "9" * 5000, "NaN", ""])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT
# Two levels, not st.recursive: deep nesting has strategies of its own (DEEP).
JSON_VALUES = SCALARS | st.lists(SCALARS, max_size=4) | st.dictionaries(
    ODD_TEXT, SCALARS | st.lists(SCALARS, max_size=4), max_size=4)


def nested(levels: int, opening: str, closing: str, leaf: str) -> bytes:
    return (opening * levels + leaf + closing * levels).encode()


DEEP = st.builds(nested, st.sampled_from([33, 1_000, 5_000, 30_000]), st.sampled_from(["[", '{"a":']),
                 st.sampled_from(["]", "}"]), st.sampled_from(["", "1"]))
HUGE_NUMBERS = st.sampled_from([b"1" * 5000, b"1e999999", b"-1e999999", b'{"content": 1' + b"0" * 5000 + b"}",
                                b'{"chatSessionId": 1e999, "content": NaN}', b"Infinity"])
CONTEXTS = st.sampled_from([
    "{not json", "[]", '{"request_id": 7, "deadline": "soon"}', '{"deadline": 1e999}', '{"deadline": NaN}',
    '{"deadline": 1' + "0" * 400 + "}", '{"deadline": true, "xray_trace_id": ["x"]}',
    '{"xray_trace_id": "Root=1\\u0000"}', '{"authorizer": {"iam": []}}', "[" * 5000 + "]" * 5000,
    '{"requestId": ' * 3000 + "1" + "}" * 3000,
])
CONTENT_TYPES = st.sampled_from(["text/plain", "", "application/x-www-form-urlencoded", "APPLICATION/JSON",
                                 "multipart/form-data", "application/json; charset=utf-16", "application/json;;;"])
FRAMING = {"content-length", "host", "transfer-encoding", "connection", "content-type", "expect", "upgrade", "te",
           "trailer", "keep-alive"}  # the HTTP client itself owns these
HEADER_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20).filter(
    lambda name: name not in FRAMING)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)
QUERY = st.lists(st.tuples(st.sampled_from(["offset", "protocol", "x", ""]),
                           ODD_NUMBERS | st.sampled_from(["ai-sdk", "AI-SDK", "sse", ""]) | SHORT_TEXT),
                 min_size=1, max_size=3).map(urlencode)


@dataclass
class Targets:
    """What a request can name: the caller's sessions, one with a finished answer, and the demo session (the local
    user's: another user's in jwt mode)."""

    session: str
    answer: str
    question: str
    chat_session: str  # where the chat route's good requests go, so that the session above stays as it is
    others_session: str = DEMO_SESSION_ID

    def ids(self) -> st.SearchStrategy[str]:
        known = st.sampled_from([self.session, self.answer, self.question, self.others_session,
                                 "01HZY0000000000000000NOPE0", self.session + "\n", "..", "%00", "🙂"])
        return known | SHORT_TEXT.filter(lambda text: not {"/", "?", "#"} & set(text))

    def good_body(self, path: str) -> dict[str, Any]:
        """A body the route takes (an empty object for a route that reads none)."""
        return {"/sessions": {"provider": "simulated", "model": FAST_MODEL, "title": "Fuzzed"},
                "/chat/stream": {"chatSessionId": self.chat_session, "content": "hi"}}.get(path, {})

    def bad_bodies(self) -> st.SearchStrategy[bytes]:
        ids = st.sampled_from([self.chat_session, self.others_session, "01HZY0000000000000000NOPE0"])
        fields = st.sampled_from(["chatSessionId", "content", "clientMessageId", "provider", "model", "title",
                                  "system", "fallbacks", "id", "messages"])
        almost = st.dictionaries(fields, JSON_VALUES | ids | st.sampled_from(["simulated", "openai", FAST_MODEL]),
                                 max_size=6)
        chat = st.fixed_dictionaries({"chatSessionId": ids | JSON_VALUES, "content": ODD_TEXT | JSON_VALUES},
                                     optional={"clientMessageId": SHORT_TEXT | JSON_VALUES | st.just("a" * 65)})
        session = st.fixed_dictionaries(
            {"provider": st.sampled_from(["simulated", "openai", "nope"]) | JSON_VALUES,
             "model": st.sampled_from([FAST_MODEL, "gpt-4o-mini"]) | JSON_VALUES},
            optional={"title": ODD_TEXT, "system": ODD_TEXT,
                      "fallbacks": JSON_VALUES | st.just([{"provider": "simulated", "model": FAST_MODEL}] * 4)})
        message = st.fixed_dictionaries({"id": SHORT_TEXT, "role": st.sampled_from(["user", "ai", 7]),
                                         "parts": st.lists(st.fixed_dictionaries(
                                             {"type": st.sampled_from(["text", "file"]), "text": JSON_VALUES}),
                                             max_size=3) | JSON_VALUES})
        ai_sdk = st.fixed_dictionaries({"id": ids | SHORT_TEXT, "messages": st.lists(message, max_size=3)})
        return (
            st.one_of(almost, chat, session, ai_sdk).map(lambda value: json.dumps(value).encode())
            | st.binary(max_size=400)
            | ODD_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))
            | DEEP
            | HUGE_NUMBERS
            | almost.map(lambda value: json.dumps(value).encode("utf-16"))
        )


# The apps under test, each with a recorder of the writes its DynamoDB client makes


class WriteRecorder:
    """Every successful DynamoDB write a client makes, with the tables it touched, from botocore's own events."""

    def __init__(self, client: Any) -> None:
        self.writes: list[tuple[str, set[str]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.dynamodb", self._note_tables)
        client.meta.events.register("after-call.dynamodb", self._record)

    def _note_tables(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        tables = {params["TableName"]} if "TableName" in params else set(params.get("RequestItems", {}))
        for item in params.get("TransactItems", []):
            tables |= {action["TableName"] for action in item.values()}
        context["fuzz_tables"] = tables

    def _record(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name in WRITE_OPERATIONS and http_response.status_code == 200:
            with self._lock:
                self.writes.append((model.name, context.get("fuzz_tables", set())))

    def chat_writes_since(self, mark: int) -> list[tuple[str, set[str]]]:
        with self._lock:
            return [write for write in self.writes[mark:] if FUZZ_TABLE in write[1]]


class FuzzedApp:
    """One app under test, what its requests can name, and how to see what they wrote. A plain class: Hypothesis
    prints a dataclass field by field with a failing example, 100 KB of tokens included, and warns about it."""

    def __init__(self, mode: str, client: httpx.Client, recorder: WriteRecorder, dynamodb: Any, targets: Targets,
                 credentials: bytes, tokens: dict[str, str | bytes]) -> None:
        self.mode = mode
        self.client = client
        self.recorder = recorder
        self.dynamodb = dynamodb
        self.targets = targets
        self.credentials = credentials  # the caller's own Authorization header
        self.tokens = tokens  # hostile ones

    def __repr__(self) -> str:
        return f"FuzzedApp(mode={self.mode!r})"

    def authorizations(self) -> st.SearchStrategy[bytes | str]:
        return st.sampled_from([*(b"Bearer " + _bytes(token) for token in self.tokens.values()),
                                "Bearer", "bearer x.y.z", "Basic dXNlcjpwYXNz", "x"])

    def leases(self) -> dict[str, list[str]]:
        """The stream leases held in the limits table, per user: what a rejected request must leave as it was (a
        lease taken and given back leaves its user's item behind, with none)."""
        items = self.dynamodb.scan(TableName=FUZZ_LIMITS_TABLE, ConsistentRead=True)["Items"]
        # This app's users only: a lease another test left (one whose release a store outage failed) waits there
        # until it expires and some request of that user frees it.
        return {item["PK"]["S"]: sorted(item["streams"]["M"]) for item in items
                if item["SK"]["S"] == "STREAMS" and item.get("streams", {}).get("M")
                and item["PK"]["S"] in FUZZ_USERS}

    def restore_targets(self) -> None:
        """After an accepted DELETE (of a session, or of all the caller's), the caller's sessions are made again,
        so that later examples still reach as deep as a good request goes."""
        credentials = {"authorization": self.credentials}
        if self.client.get(f"/sessions/{self.targets.session}/messages", headers=credentials).status_code == 200 \
                and self.client.get(f"/sessions/{self.targets.chat_session}/messages",
                                    headers=credentials).status_code == 200:
            return
        self.targets = replace(self.targets, **_caller_sessions(self.client, credentials))

    def settle(self) -> None:
        """After an accepted stream, its lease goes back once the turn has stored its answer: wait for that, so
        that the next request starts from rest (a lease that never comes back fails the run here)."""
        for _ in range(100):
            if not self.leases():
                return
            time.sleep(0.05)
        raise AssertionError(f"a stream lease was never given back: {self.leases()}")


@pytest.fixture(scope="module")
def fuzz_tables(stack: Any, dynamodb: Any) -> None:
    """The fuzz's tables, with another user's session in (the demo session's id, as in the shared table)."""
    import asyncio

    from relay.records import ChatSession

    create_table(dynamodb, FUZZ_TABLE, session_index=True)
    create_table(dynamodb, FUZZ_LIMITS_TABLE)
    others = ChatSession(DEMO_SESSION_ID, "simulated", FAST_MODEL, "2026-01-01T00:00:00.000Z", owner_id=LOCAL_USER)
    asyncio.run(ChatStore(FUZZ_TABLE, ttl_days=1, client_factory=lambda: dynamodb).create_session(others))


@pytest.fixture(scope="module", params=["none", "jwt"])
def fuzzed(request: pytest.FixtureRequest, stack: Any, issuer: Issuer, fuzz_tables: None) -> Iterator[FuzzedApp]:
    mode = request.param
    dynamodb = stack.dynamodb_client()
    recorder = WriteRecorder(dynamodb)
    jwt_settings = JwtSettings(issuer=issuer.url, jwks_url=issuer.url + "/.well-known/jwks.json", audience=AUDIENCE)
    # Limits on, as deployed (the shared stack runs without them), and high enough never to refuse.
    app_settings = replace(Settings.from_environment(), table_name=FUZZ_TABLE, limits_table_name=FUZZ_LIMITS_TABLE,
                           requests_per_minute=1_000_000, concurrent_streams=1_000, provider_max_retries=0)
    app = create_app(app_settings, ChatStore(FUZZ_TABLE, ttl_days=1, client_factory=lambda: dynamodb),
                     authenticator=(lambda http: JwtAuthenticator(jwt_settings, http)) if mode == "jwt"
                     else (lambda http: OneUserOfItsOwn(NONE_MODE_USER)))
    server = UvicornThread(app).start()
    credentials = f"Bearer {issuer.token(sub=JWT_MODE_USER)}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # from here on, each example says who calls
        tokens = {**hostile_tokens(issuer), "another user's": issuer.token(sub="someone-else"),
                  "sub not text": issuer.token(sub=["not", "text"]), "sub empty": issuer.token(sub=""),
                  "exp in 10**20 s": issuer.token(exp=10**20), "nbf infinite": issuer.token(nbf=float("inf")),
                  "exp infinite, unsigned": forged_token({"alg": "RS256", "kid": issuer.keys[0].kid},
                                                         {"sub": "mallory", "exp": 1e999}),
                  "three junk segments": "x.y.z", "an emoji": "🙂"}
        targets = Targets(**_caller_sessions(client, {"authorization": credentials}))
        yield FuzzedApp(mode, client, recorder, dynamodb, targets, credentials.encode(), tokens)
    server.stop()


def _caller_sessions(client: httpx.Client, credentials: dict[str, str]) -> dict[str, str]:
    """Two sessions of the caller's, one with an answer: what good requests name."""
    session, chat_session = (
        client.post("/sessions", json={"provider": "simulated", "model": FAST_MODEL}, headers=credentials).json()[
            "chatSessionId"] for _ in range(2))
    start = stream_chat(client, session, headers=credentials).one("start")
    return {"session": session, "answer": start["messageId"], "question": start["userMessageId"],
            "chat_session": chat_session}


def routes() -> list[tuple[str, list[str]]]:
    """Every route of the app, with its methods, from its own router: a new route is fuzzed without a word here."""
    app = create_app(Settings(), ChatStore(TABLE_NAME, ttl_days=1), authenticator=lambda http: NoAuthentication())
    return [(route.path, sorted(route.methods or ())) for route in app.routes if isinstance(route, Route)]


@dataclass(frozen=True)
class Hostile:
    """One hostile part, put into an otherwise good request: headers added (or replacing the good ones), a query,
    or the body. ``token`` names one of the app's hostile tokens, sent as the caller's credentials."""

    headers: tuple[tuple[str, str | bytes], ...] = ()
    query: str = ""
    body: bytes | None = None
    token: str | None = None


DEEP_ARRAY = "[" * 5000 + "]" * 5000
KNOWN_HOSTILE = {
    **{f"token: {name}": Hostile(token=name) for name in [
        *HOSTILE_TOKEN_CASES, "another user's", "sub not text", "sub empty", "exp in 10**20 s", "nbf infinite",
        "exp infinite, unsigned", "three junk segments", "an emoji"]},
    "no credentials": Hostile(headers=(("authorization", ""),)),
    **{f"{header}: {name}": Hostile(headers=((header, value),)) for header in ("x-amzn-lambda-context",
                                                                              "x-amzn-request-context")
       for name, value in [("nested 5000 deep", DEEP_ARRAY), ("deadline 1e999", '{"deadline": 1e999}'),
                           ("deadline NaN", '{"deadline": NaN}'), ("deadline of 400 digits",
                                                                   '{"deadline": 1' + "0" * 400 + "}"),
                           ("trace id with NUL", '{"xray_trace_id": "Root=1\\u0000"}'), ("not JSON", "{x")]},
    **{f"Last-Event-ID: {value!r}": Hostile(headers=(("last-event-id", value),))
       for value in [b"\xb2", b"\xb9\xb2", "²".encode(), "١٢".encode(), b"-1", b"9" * 5000, b"\xff"]},
    **{f"query: {query}": Hostile(query=query) for query in [
        "offset=%C2%B2", "offset=%D9%A1%D9%A2", "offset=%EF%BC%91", "offset=" + "9" * 5000, "offset=-1",
        "protocol=AI-SDK", "protocol=", "protocol=ai-sdk&protocol=x", "x=%FF"]},
    **{f"content-type: {value!r}": Hostile(headers=(("content-type", value),))
       for value in ["text/plain", "", "application/json; charset=utf-16", "APPLICATION/JSON"]},
    "content-length with leading zeros": Hostile(headers=(("content-length", "leading zeros"),)),
    **{f"body: {name}": Hostile(body=body) for name, body in [
        ("array nested 5000 deep", DEEP_ARRAY.encode()), ("object nested 10000 deep", nested(10_000, '{"a":', "}",
                                                                                              "1")),
        ("nested 33 deep", nested(33, "[", "]", "")), ("integer of 5000 digits", b"1" * 5000),
        ("1e999999", b"1e999999"), ("NaN content", b'{"chatSessionId": 1e999, "content": NaN}'),
        ("UTF-16", json.dumps({"content": "hi"}).encode("utf-16")), ("not UTF-8", b'{"content": "\xff"}'),
        ("UTF-8 byte order mark", b'\xef\xbb\xbf{"content": "hi"}'), ("lone surrogate", b'{"content": "\\ud800"}'),
        ("empty", b""), ("over 64 KiB", b'{"content": "' + b"x" * 70_000 + b'"}')]},
    "AI SDK body nested 5000 deep": Hostile(query="protocol=ai-sdk", body=b'{"id": "x", "messages": '
                                            + DEEP_ARRAY.encode() + b"}"),
}


class Request:
    """A request being put together: it starts good, for this route and caller, and parts are made hostile."""

    def __init__(self, fuzzed: FuzzedApp, path: str, methods: list[str]) -> None:
        self.fuzzed, self.route, self.method = fuzzed, path, methods[0]
        self.ids = {"chatSessionId": fuzzed.targets.session, "messageId": fuzzed.targets.answer}
        self.query = ""
        self.headers: dict[str, str | bytes] = {"content-type": "application/json",
                                                "authorization": fuzzed.credentials}
        self.body: bytes | None = None  # the route's good body, unless made hostile

    def apply(self, part: Hostile) -> Request:
        if part.token is not None:
            self.headers["authorization"] = b"Bearer " + _bytes(self.fuzzed.tokens[part.token])
        self.headers.update(part.headers)
        self.query = part.query or self.query
        self.body = part.body if part.body is not None else self.body
        return self

    def send(self) -> httpx.Response:
        path = self.route
        for name, value in self.ids.items():
            path = path.replace(f"{{{name}}}", quote(value, safe=""))
        good = json.dumps(self.fuzzed.targets.good_body(self.route)).encode()
        body = b"" if self.method in ("GET", "HEAD") else self.body if self.body is not None else good
        headers = {name: value for name, value in self.headers.items() if value != ""}
        if headers.get("content-length") == "leading zeros":
            headers["content-length"] = f"000{len(body)}"
        with self.fuzzed.client.stream(self.method, path + ("?" + self.query if self.query else ""), content=body,
                                       headers=headers) as response:
            response.read()
        return response


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def assert_no_5xx_and_a_rejection_writes_nothing(fuzzed: FuzzedApp, request: Request) -> httpx.Response:
    leases, mark = fuzzed.leases(), len(fuzzed.recorder.writes)
    response = request.send()
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        if request.method != "HEAD":
            assert response.headers["content-type"].startswith("application/json")
            assert set(response.json()["error"]) == {"code", "message"}
        assert fuzzed.recorder.chat_writes_since(mark) == []
        assert fuzzed.leases() == leases
    else:
        fuzzed.settle()
        if request.method == "DELETE":
            fuzzed.restore_targets()
    return response


def known_cases(tokens: bool) -> list[Any]:
    """(route, case) wherever the case can matter: bodies on routes that take a body; the tokens apart, since only
    jwt mode reads them."""
    return [pytest.param(route, name, id=f"{route[0]}-{name}") for route in routes()
            for name, part in KNOWN_HOSTILE.items()
            if (part.token is not None) == tokens and (part.body is None or "POST" in route[1])]


@pytest.mark.parametrize("fuzzed", ["jwt"], indirect=True)
@pytest.mark.parametrize(("route", "case"), known_cases(tokens=True))
def test_every_route_takes_each_hostile_token_in_a_good_request(fuzzed, route, case):
    # GIVEN a good request to the route, but for its token
    request = Request(fuzzed, *route).apply(KNOWN_HOSTILE[case])
    # WHEN it is sent THEN it is no 5xx, and a rejection writes nothing
    assert_no_5xx_and_a_rejection_writes_nothing(fuzzed, request)


@pytest.mark.parametrize(("route", "case"), known_cases(tokens=False))
def test_every_route_takes_each_other_hostile_part_in_a_good_request(fuzzed, route, case):
    # GIVEN a good request to the route, one part of it hostile
    request = Request(fuzzed, *route).apply(KNOWN_HOSTILE[case])
    # WHEN it is sent THEN it is no 5xx, and a rejection writes nothing
    assert_no_5xx_and_a_rejection_writes_nothing(fuzzed, request)


def hostile(data: st.DataObject, part: str) -> bool:
    """Whether this part of the request is made hostile: about one part in three, so that most examples keep
    enough of a good request to get deep, and together they cover every combination that matters."""
    return data.draw(st.sampled_from([False, False, True]), label=f"hostile {part}")


@pytest.mark.parametrize("route", routes(), ids=lambda route: route[0])
@FUZZ
@given(data=st.data())
def test_no_request_answers_5xx_and_a_rejected_one_writes_nothing(fuzzed, route, data):
    # GIVEN a request the route would take, some of its parts made hostile
    request = Request(fuzzed, *route)
    if hostile(data, "method"):
        request.method = data.draw(st.sampled_from(OTHER_METHODS), label="method")
    for name in [name for name in request.ids if f"{{{name}}}" in request.route]:
        if hostile(data, name):
            request.ids[name] = data.draw(fuzzed.targets.ids(), label=name)
    if hostile(data, "query"):
        request.query = data.draw(QUERY, label="query")
    if hostile(data, "credentials"):
        request.headers["authorization"] = data.draw(fuzzed.authorizations() | st.just(""), label="authorization")
    if hostile(data, "headers"):
        request.headers.update(data.draw(st.fixed_dictionaries({}, optional={
            "x-user-authorization": fuzzed.authorizations(),
            "last-event-id": ODD_NUMBERS.map(lambda number: number.strip().encode())  # h11 sends no edge spaces
            | st.sampled_from([b"\xb2", b"\xb9\xb2", b"\xff"]),
            "accept": st.sampled_from(["text/plain", "text/event-stream", "*/*", "text/plain, text/event-stream"]),
            "x-amzn-lambda-context": CONTEXTS,
            "x-amzn-request-context": CONTEXTS,
            "content-type": CONTENT_TYPES,
            "content-length": st.just("leading zeros"),
        }) | st.dictionaries(HEADER_TOKEN, HEADER_VALUE, min_size=1, max_size=4), label="headers"))
    if hostile(data, "body"):
        request.body = data.draw(fuzzed.targets.bad_bodies(), label="body")
    # WHEN it is sent THEN it is never a 5xx, a rejection is a JSON error, and a rejected request wrote nothing
    response = assert_no_5xx_and_a_rejection_writes_nothing(fuzzed, request)
    event(f"{request.method}: {response.status_code}")
