"""Run a function URL event (payload format 2.0) through the app the way the Lambda Web Adapter translates it.

    python -m devtools.invoke events/chat-stream.json              # on a fresh local stack of its own
    python -m devtools.invoke events/chat-stream.json --url http://127.0.0.1:3000   # against `make dev`

The adapter turns the event into an HTTP request (method, raw path and query, headers, body) and adds the
``x-amzn-request-context`` and ``x-amzn-lambda-context`` headers; the response is printed as it streams.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx

LAMBDA_TIMEOUT_MS = 900_000
EVENTS_DIRECTORY = Path(__file__).resolve().parent.parent / "events"
# Beside the events, the `--env-vars` file of `sam local invoke` (README, Events): not an event itself.
SAM_LOCAL_ENV_FILE = EVENTS_DIRECTORY / "sam-local-env.json"


def event_files() -> list[Path]:
    """Every function URL event in events/."""
    return sorted(path for path in EVENTS_DIRECTORY.glob("*.json") if path != SAM_LOCAL_ENV_FILE)


def adapter_request(event: dict[str, Any], base_url: str) -> httpx.Request:
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    url = base_url.rstrip("/") + event.get("rawPath", "/")
    if event.get("rawQueryString"):
        url += "?" + event["rawQueryString"]
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    body = event.get("body") or ""
    content = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    request_id = context.get("requestId", "local-invoke")
    headers["x-amzn-request-context"] = json.dumps(context)
    headers["x-amzn-lambda-context"] = json.dumps({
        "request_id": request_id,
        "deadline": int(time.time() * 1000) + LAMBDA_TIMEOUT_MS,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:chat-relay-local",
        "xray_trace_id": _trace_header(), "client_context": None, "identity": None,
        "env_config": {"function_name": "chat-relay-local", "memory": 1024, "version": "$LATEST",
                       "log_stream": "", "log_group": ""},
    })
    return httpx.Request(http.get("method", "GET"), url, headers=headers, content=content)


def _trace_header() -> str:
    """A sampled X-Ray trace header, as Lambda gives each invocation."""
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return f"Root={root};Parent={secrets.token_hex(8)};Sampled=1"


def invoke(event: dict[str, Any], base_url: str) -> Iterator[tuple[httpx.Response, bytes]]:
    """The response, then each body chunk as it arrives."""
    with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
        response = client.send(adapter_request(event, base_url), stream=True)
        try:
            for chunk in response.iter_raw():
                yield response, chunk
            yield response, b""
        finally:
            response.close()


def print_invocation(event: dict[str, Any], base_url: str, out: TextIO = sys.stdout) -> int:
    status = 0
    for index, (response, chunk) in enumerate(invoke(event, base_url)):
        if index == 0:
            status = response.status_code
            out.write(f"HTTP {response.status_code}\n")
            for name, value in response.headers.items():
                out.write(f"{name}: {value}\n")
            out.write("\n")
        out.write(chunk.decode(errors="replace"))
        out.flush()
    out.write("\n")
    return status


def read_event(path: Path) -> dict[str, Any]:
    """The event in ``path``; a missing or unreadable file is a ValueError that says so in one line."""
    if not path.is_file():
        raise ValueError(f"no event file {path} — try `make invoke EVENT=events/chat-stream.json` (the others are "
                         f"in {EVENTS_DIRECTORY.name}/ too)")
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a JSON event file: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError(f"{path} is not a function URL event: a JSON object is")
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="a function URL event file, e.g. events/chat-stream.json")
    parser.add_argument("--url", help="a running relay (e.g. `make dev`); default: start a local stack for this run")
    args = parser.parse_args(argv)
    try:
        event = read_event(args.event)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.url:
        status = print_invocation(event, args.url)
    else:
        from devtools.local_run import LocalRun
        from devtools.terminal import send_relay_logs_to

        # The response is the output; the app's logs and EMF (its stdout on Lambda) go to stderr beside it.
        response = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            send_relay_logs_to(sys.stderr)
            run = LocalRun(port=0).start()
            try:
                status = print_invocation(event, run.url, response)
            finally:
                run.stop()
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
