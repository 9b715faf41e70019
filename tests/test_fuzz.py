"""Property-based fuzzing of every route over real loopback HTTP: malformed JSON, wrong types, huge and odd
Unicode, control characters and random headers. Never a 5xx, and a rejected request adds no item to the table."""

import json
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.local_run import DEMO_SESSION_ID
from tests.conftest import count_items

ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["", " ", "\x00", "\u2028\u2029\u0085", "\ud800", "🙂" * 50, "x" * 70_000, "data: x\n\nevent: done\n\n"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ODD_TEXT, children, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["chatSessionId", "content", "provider", "model", "title", "system"])
ALMOST_VALID = st.dictionaries(FIELDS, JSON_VALUES | st.sampled_from([DEMO_SESSION_ID, "simulated", "openai"]),
                               max_size=6)
BODIES = (
    st.binary(max_size=400)
    | ODD_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | ALMOST_VALID.map(lambda value: json.dumps(value).encode())
)
FRAMING = {"content-length", "host", "transfer-encoding", "connection", "content-type", "expect", "upgrade", "te",
           "trailer", "keep-alive"}  # the HTTP client itself owns these
HEADER_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20).filter(
    lambda name: name not in FRAMING)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)
HEADERS = st.dictionaries(HEADER_TOKEN, HEADER_VALUE, max_size=4) | st.sampled_from([
    {"accept": "text/plain"}, {"x-amzn-lambda-context": "{not json"}, {"x-amzn-request-context": "[]"},
    {"authorization": "Bearer x"}, {"x-amzn-lambda-context": '{"request_id": 7, "deadline": "soon"}'},
])
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "",
                                 "application/x-www-form-urlencoded", "APPLICATION/JSON", "multipart/form-data"])
ROUTES = st.sampled_from([("POST", "/sessions"), ("POST", "/chat/stream"), ("GET", "/providers"),
                          ("GET", "/healthz"), ("PUT", "/sessions"), ("DELETE", "/chat/stream")])
IDS = st.sampled_from([DEMO_SESSION_ID, "01HZY0000000000000000NOPE0", "..", "%00", "🙂"]) | ODD_TEXT.filter(
    lambda text: len(text) < 1000 and not {"/", "?", "#", "\ud800"} & set(text))

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def send(client: httpx.Client, method: str, path: str, body: bytes, content_type: str,
         headers: dict[str, str]) -> httpx.Response:
    request_headers = {**headers, "content-type": content_type} if content_type else headers
    return client.request(method, path, content=body, headers=request_headers)


@FUZZ
@given(route=ROUTES, body=BODIES, content_type=CONTENT_TYPES, headers=HEADERS)
def test_no_route_answers_5xx_and_rejections_write_nothing(client, dynamodb, route, body, content_type, headers):
    before = count_items(dynamodb)
    response = send(client, *route, body, content_type, headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()["error"]) == {"code", "message"}
        assert count_items(dynamodb) == before
    else:
        response.read()


@FUZZ
@given(chat_session_id=IDS, headers=HEADERS)
def test_message_listing_never_answers_5xx(client, chat_session_id, headers):
    response = client.get(f"/sessions/{quote(chat_session_id, safe='')}/messages", headers=headers)
    assert response.status_code in (200, 404), response.text
