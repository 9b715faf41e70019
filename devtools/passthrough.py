"""The least a Python relay can do, as the benchmark's reference: read the request, make one streamed POST to the
provider with httpx, and pass its bytes on as they arrive, each read as a ``token`` event. No store, no parsing,
no checks; Powertools' logger and metrics are created, as any service of ours would. What the relay adds beyond
this is its own cost: per request, this is what one more HTTP hop through uvicorn, Starlette and httpx costs on the
machine, and at a cold start what the stack itself costs.

    SIMULATED_PROVIDER_URL=http://127.0.0.1:PORT/v1 python -m uvicorn devtools.passthrough:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from aws_lambda_powertools import Logger, Metrics
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "sim:first_token_ms=0,tokens_per_second=0,tokens=5"
logger, metrics = Logger(service="passthrough"), Metrics(namespace="Passthrough", service="passthrough")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with httpx.AsyncClient(base_url=os.environ["SIMULATED_PROVIDER_URL"], timeout=60) as http:
        app.state.http = http
        yield


async def chat_stream(request: Request) -> Response:
    body = await request.json()
    http: httpx.AsyncClient = request.app.state.http
    upstream = await http.send(http.build_request("POST", "/chat/completions", json={
        "model": MODEL, "stream": True, "messages": [{"role": "user", "content": body["content"]}]}), stream=True)

    async def relayed() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield b"event: token\n" + chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(relayed(), media_type="text/event-stream")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/chat/stream", chat_stream, methods=["POST"]), Route("/healthz", healthz)],
                lifespan=lifespan)
