"""CORS from an allowlist: the app answers it off Lambda (the local run), the function URL on Lambda, from the same
parameter; never a wildcard, never credentials."""

from devtools.local_run import LOCAL_DEFAULTS

ALLOWED = LOCAL_DEFAULTS["CORS_ALLOW_ORIGINS"].split(",")[0]


def preflight(client, origin: str, headers: str = "content-type,authorization"):
    return client.options("/chat/stream", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": headers})


def test_allowed_origin_gets_its_preflight_and_its_headers_without_credentials(client):
    response = preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers
    streamed = client.get("/healthz", headers={"Origin": ALLOWED})
    assert streamed.headers["access-control-allow-origin"] == ALLOWED
    # ... and the page may read when a 429 stops (relay-client.js: a spent budget says when it starts again)
    assert streamed.headers["access-control-expose-headers"].lower() == "retry-after"


def test_other_origins_get_no_cors_headers(client):
    response = preflight(client, "https://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://evil.example"}).headers


def test_the_headers_a_page_behind_cloudfront_sends_are_allowed(client):
    # GIVEN a page whose relay is behind CloudFront with Origin Access Control (relay-client.js, authMode "iam")
    headers = "content-type,x-amz-content-sha256,x-user-authorization"
    # WHEN its browser asks before a POST
    response = preflight(client, ALLOWED, headers)
    # THEN the body's hash and the user's token may go (a header outside the list fails the preflight with 400)
    assert response.status_code == 200
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-amz-content-sha256" in allowed and "x-user-authorization" in allowed
