"""A local stand-in for CloudFront with Origin Access Control in front of an AWS_IAM function URL (AuthMode iam),
so the browser's side of that mode can be tested for real. Not deployed; nothing here reaches AWS.

What it does to each request, as the two do (CloudFront Developer Guide, "Restrict access to an AWS Lambda
function URL origin"; the OAC's SigningBehavior ``always``, as in template.yaml):

    viewer ──► CloudFront (OAC)                        ──► function URL (AWS_IAM)             ──► app (uvicorn)
               drops the viewer's Authorization and        recomputes the signature with the      x-amzn-request-context
               signs with SigV4 (service "lambda"),        SHA-256 of the body it received:       names the IAM caller
               the payload hash being the viewer's         a missing or wrong hash → 403
               x-amz-content-sha256                        InvalidSignatureException, and the
                                                           function is never invoked

AWS asks for that header on a POST or PUT ("Lambda doesn't support unsigned payloads"), not on a GET, and does
not say how CloudFront signs a body that came without it. Here: as UNSIGNED-PAYLOAD on a POST, PUT or PATCH
(refused), as the empty body's hash otherwise. Both signing and checking are botocore's ``SigV4Auth``, with
one fixed local credential. CORS is answered here, as the function URL answers it on Lambda (the app's own is off
there), with the app's header list, which a test keeps equal to the template's; the gate's refusals carry the CORS
headers too, which assumes the function URL adds them to its own 403s as well. The answer is passed on as it
arrives (``RESPONSE_STREAM``), never buffered. Kept small on purpose: no caching, no other origins, no Lambda
context.

    python -m devtools.oac_gate --upstream http://127.0.0.1:3000 --port 3001 --allow-origin http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import httpx
from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from relay.app import cors_middleware

__all__ = ["ACCOUNT_ID", "CALLER_ARN", "SIGNATURE_MISMATCH", "create_gate", "sign_as_cloudfront", "signature_holds"]

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
CALLER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/local-oac-gate"
CREDENTIALS = Credentials("AKIALOCALOACGATE0000", "local-oac-gate-secret")
CONTENT_SHA256 = "x-amz-content-sha256"
# CloudFront's docs name PUT and POST; PATCH carries a body just the same.
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Lambda's answer to a signature that does not match, word for word.
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                      "Secret Access Key and signing method. Consult the service documentation for details.")
# Never forwarded as the viewer sent them: the connection's own, and what only CloudFront and Lambda may set.
DROPPED_REQUEST_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding",
                                     "authorization", "x-amz-date", "x-amz-security-token", CONTENT_SHA256,
                                     "x-amzn-request-context", "x-amzn-lambda-context"})
DROPPED_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding"})
ORIGIN_READ_TIMEOUT_SECONDS = 60.0  # template.yaml's OriginReadTimeout: the longest silence CloudFront waits out


def create_gate(upstream: str, allow_origins: Sequence[str] = ()) -> Starlette:
    """The gate in front of the app at ``upstream``, answering CORS for ``allow_origins``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(ORIGIN_READ_TIMEOUT_SECONDS, connect=5.0)
        async with httpx.AsyncClient(base_url=upstream, timeout=timeout) as http:
            app.state.http = http
            yield

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)],
                     middleware=[cors_middleware(allow_origins)], lifespan=lifespan)


async def forward(request: Request) -> Response:
    http: httpx.AsyncClient = request.app.state.http
    body = await request.body()  # a function URL receives the whole request before it invokes anything
    url = str(http.base_url.copy_with(path=request.url.path, query=request.url.query.encode() or None))
    headers = {name: value for name, value in request.headers.items() if name not in DROPPED_REQUEST_HEADERS}
    headers.update(sign_as_cloudfront(request.method, url, request.headers.get(CONTENT_SHA256)))
    if not signature_holds(request.method, url, headers, body):
        return JSONResponse({"message": SIGNATURE_MISMATCH}, status_code=403,
                            headers={"x-amzn-ErrorType": "InvalidSignatureException"})
    headers["x-amzn-request-context"] = json.dumps(request_context(request))
    upstream = await http.send(http.build_request(request.method, url, headers=headers, content=body), stream=True)
    return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                             headers={name: value for name, value in upstream.headers.items()
                                      if name.lower() not in DROPPED_RESPONSE_HEADERS},
                             background=BackgroundTask(upstream.aclose))


def sign_as_cloudfront(method: str, url: str, declared_sha256: str | None) -> dict[str, str]:
    """The headers OAC adds: its SigV4 Authorization (replacing the viewer's), its date, and the payload hash."""
    payload_hash = declared_sha256 or (UNSIGNED_PAYLOAD if method in METHODS_WITH_BODY else EMPTY_SHA256_HASH)
    signed = AWSRequest(method=method, url=url, headers={CONTENT_SHA256: payload_hash})
    SigV4Auth(CREDENTIALS, "lambda", REGION).add_auth(signed)
    return {name.lower(): value for name, value in signed.headers.items()}


def signature_holds(method: str, url: str, headers: Mapping[str, str], body: bytes) -> bool:
    """The function URL's check: the signature recomputed over the headers it names and the body as received."""
    scheme, _, fields = headers.get("authorization", "").partition(" ")
    parts = dict(field.strip().split("=", 1) for field in fields.split(",") if "=" in field)
    if scheme != "AWS4-HMAC-SHA256" or headers.get(CONTENT_SHA256) == UNSIGNED_PAYLOAD:
        return False
    # The host is signed as the URL names it, which is where this request goes.
    signed_names = [name for name in parts.get("SignedHeaders", "").split(";") if name != "host"]
    # Lambda hashes the body it received: a hash the viewer declared for other bytes signs something else.
    received_headers = {name: headers.get(name, "") for name in signed_names}
    received_headers[CONTENT_SHA256] = hashlib.sha256(body).hexdigest()
    received = AWSRequest(method=method, url=url, headers=received_headers)
    received.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(CREDENTIALS, "lambda", REGION)
    expected = signer.signature(signer.string_to_sign(received, signer.canonical_request(received)), received)
    return hmac.compare_digest(expected, parts.get("Signature", ""))


def request_context(request: Request) -> dict[str, object]:
    """The part of a function URL event's requestContext the adapter passes on, with the IAM caller (the signer)."""
    return {
        "accountId": ACCOUNT_ID,
        "authorizer": {"iam": {"accessKey": CREDENTIALS.access_key, "accountId": ACCOUNT_ID,
                               "callerId": "AIDALOCALOACGATE", "userArn": CALLER_ARN, "userId": "AIDALOCALOACGATE",
                               "cognitoIdentity": None, "principalOrgId": None}},
        "http": {"method": request.method, "path": request.url.path, "protocol": "HTTP/1.1",
                 "sourceIp": request.client.host if request.client else "", "userAgent":
                 request.headers.get("user-agent", "")},
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "timeEpoch": int(time.time() * 1000),
    }


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="the app, e.g. http://127.0.0.1:3000 (AUTH_MODE=iam)")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--allow-origin", action="append", default=[], help="an origin the page is served from")
    args = parser.parse_args(argv)
    uvicorn.run(create_gate(args.upstream, args.allow_origin), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
