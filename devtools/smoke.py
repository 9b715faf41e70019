"""A live relay checked end to end as a user meets it: ``make smoke URL=https://<id>.lambda-url.<region>.on.aws``.

    python -m devtools.smoke URL [--token T] [--provider P --model M]      (TOKEN in the environment also works)

Each step is a check that stops the run with its reason:

1. ``GET /healthz`` answers ok.
2. ``GET /providers`` offers the provider to use (``--provider``, else the first listed) and its model
   (``--model``, else the provider's first).
3. ``POST /sessions`` creates a session (titled "smoke test"; it expires with the table's TTL).
4. ``POST /chat/stream`` asks for a long answer, which must end in ``done`` and arrive incrementally (below).
5. ``GET /sessions/{id}/messages`` holds that answer, complete, equal to the streamed text.
6. ``GET /sessions/{id}/messages/{messageId}/stream?offset=N`` resumes from the middle of the answer: the rest of
   the text, then ``done``.

Then it prints the time to first token and the tokens per second, as this client saw them and as the relay
measured them. Exit status 0: every check passed; 1: one failed (its reason printed); 2: wrong usage.

**Incrementally** means the token events came in at least 3 network reads, and the first of those reads came at
least half of the relay's own generation time (first to last delta: the ``done`` event's ``outputTokens`` ÷
``tokensPerSecond``) before the last one. Measured against the relay's clock, not a fixed number of milliseconds,
the test holds for a slow provider and a fast one, and for any cold start (which only delays the first token). A
buffered path delivers the whole answer in one go at the end: its reads are a few milliseconds apart, whatever
the generation took. An answer generated in under 0.5 s cannot tell the two apart: it fails as too short.

Hand-written, from the standard library, httpx and the relay's own SSE decoder only, so that it runs wherever the
relay's tests run, against any deployment, with no account access.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from relay.sse import ServerSentEvent, SSEDecoder

__all__ = ["BUFFERING_CAUSES", "SmokeFailure", "StreamReading", "main", "run_smoke", "streaming_problem"]

TOKEN_ENV = "TOKEN"
MIN_TOKEN_READS = 3
# The first token read must come this share of the relay's generation time before the last one.
MIN_SPREAD_SHARE = 0.5
# So the spread asked for is at least 0.25 s, a round trip across continents: what a buffered body too big for one
# flight of TCP's initial window (~14 KB) can take to arrive, in two. Shorter generations cannot be told apart.
MIN_GENERATION_SECONDS = 0.5
PROMPT = ("Write about 300 words on how rivers shape the land, in plain paragraphs. "
          "This is a streaming test, so please do not answer in one short sentence.")
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # a cold start and a long answer, well inside both
BUFFERING_CAUSES = (
    "the response was buffered on its way: check that the function's AWS_LWA_INVOKE_MODE is exactly "
    "response_stream (any other value, a typo included, silently buffers), that the function URL's InvokeMode is "
    "RESPONSE_STREAM (not BUFFERED), and that no proxy or CDN in front of it buffers responses (CloudFront: "
    "caching disabled, Compress off)"
)


class SmokeFailure(Exception):
    """When a check fails: the step and the reason, in words for the person running it."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class StreamReading:
    """What the client saw of one streamed answer, each network read timed as it arrived."""

    sent_at: float
    read_times: list[float] = field(default_factory=list)  # the reads that carried token text
    text: str = ""
    offsets: list[int] = field(default_factory=list)  # each token event's id: the text's length after it
    message_id: str | None = None
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    whole_body: bool = False  # the response said its length up front: it was sent in one piece

    @property
    def generation_seconds(self) -> float | None:
        """The relay's first-to-last-delta time, from the done event, or a little more (its tokens/s counts the
        output tokens after the first read over that time)."""
        done = self.done or {}
        tokens = (done.get("usage") or {}).get("outputTokens")
        rate = done.get("tokensPerSecond")
        if not tokens or not rate:
            return None
        return float(tokens) / float(rate)


def streaming_problem(read_times: list[float], generation_seconds: float | None,
                      whole_body: bool = False) -> str | None:
    """Why these token reads do not show an answer streamed as it was generated, or None when they do."""
    if generation_seconds is None:
        return ("the relay reports fewer than two deltas from the provider, too few to tell streaming from "
                "buffering: ask for a longer answer (--model)")
    if generation_seconds < MIN_GENERATION_SECONDS:
        return (f"the answer was generated in {generation_seconds * 1000:.0f} ms, too quick to tell streaming from "
                f"buffering (at least {MIN_GENERATION_SECONDS * 1000:.0f} ms needed): ask for a longer answer")
    spread = read_times[-1] - read_times[0] if read_times else 0.0
    if len(read_times) >= MIN_TOKEN_READS and spread >= MIN_SPREAD_SHARE * generation_seconds:
        return None
    sent_whole = " The response carried a Content-Length: it was sent in one piece." if whole_body else ""
    return (f"the tokens did not arrive incrementally: {len(read_times)} network read(s) carried them, "
            f"{spread * 1000:.0f} ms apart, though the relay generated them over {generation_seconds * 1000:.0f} ms; "
            f"{BUFFERING_CAUSES}.{sent_whole}")


class RelayClient:
    """The relay's HTTP API as a user's client calls it, each failure a SmokeFailure naming its step."""

    def __init__(self, url: str, token: str | None, token_header: str) -> None:
        headers = {token_header: f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=REQUEST_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def get_json(self, step: str, path: str) -> dict[str, Any]:
        response = self._send(step, "GET", path)
        return _json(step, response)

    def post_json(self, step: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send(step, "POST", path, body)
        return _json(step, response)

    def stream(self, step: str, method: str, path: str, body: dict[str, Any] | None = None) -> Iterator[
            tuple[httpx.Response, float, list[ServerSentEvent]]]:
        """The response, then the events of each network read with the time it arrived."""
        try:
            with self._http.stream(method, path, **_request(body)) as response:
                if response.status_code != 200:
                    response.read()
                    raise SmokeFailure(step, _status_reason(method, path, response))
                decoder = SSEDecoder()
                for chunk in response.iter_bytes():  # decoded, should anything on the way compress it
                    yield response, time.perf_counter(), decoder.feed(chunk)
                yield response, time.perf_counter(), decoder.finish()
        except httpx.HTTPError as exc:
            raise SmokeFailure(step, f"{method} {path} failed: {_describe(exc)}") from exc

    def _send(self, step: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, **_request(body))
        except httpx.HTTPError as exc:
            raise SmokeFailure(step, f"{method} {path} failed: {_describe(exc)}") from exc
        if response.status_code >= 300:
            raise SmokeFailure(step, _status_reason(method, path, response))
        return response


def _request(body: dict[str, Any] | None) -> dict[str, Any]:
    if body is None:
        return {}
    content = json.dumps(body).encode()
    # CloudFront's Origin Access Control signs a POST to the URL only with its body's hash (AuthMode iam).
    headers = {"content-type": "application/json", "accept": "text/event-stream, application/json",
               "x-amz-content-sha256": hashlib.sha256(content).hexdigest()}
    return {"content": content, "headers": headers}


def _json(step: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SmokeFailure(step, f"the answer is not a JSON object: {response.text[:200]!r}")
    return body


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc}): is the URL the stack's ChatFunctionUrl output?"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {REQUEST_TIMEOUT.read:.0f} s ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _status_reason(method: str, path: str, response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        detail = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        detail = response.text[:200]
    hint = ""
    if response.status_code == 401:
        hint = " (AuthMode jwt: pass TOKEN=<a bearer token from your issuer>)"
    elif response.status_code == 403:
        hint = " (a 403 from the function URL itself: AuthMode iam needs the CloudFront URL, and the URL's permissions)"
    return f"{method} {path} answered {response.status_code}: {detail}{hint}"


class SmokeRun:
    """The steps in order (module docstring); each raises SmokeFailure or prints one line."""

    def __init__(self, client: RelayClient, out: TextIO) -> None:
        self._client = client
        self._out = out

    def health(self) -> None:
        body = self._client.get_json("health", "/healthz")
        if body != {"status": "ok"}:
            raise SmokeFailure("health", f"GET /healthz answered {body!r}, not {{'status': 'ok'}}")
        self._passed("health", "GET /healthz is ok")

    def pick_model(self, provider: str | None, model: str | None) -> tuple[str, str]:
        offered = {entry["name"]: entry["models"] for entry in self._client.get_json("providers", "/providers")
                   .get("providers", [])}
        if not offered:
            raise SmokeFailure("providers", "GET /providers offers no provider: put a key in the ProviderKeys secret "
                                            "(README, Deploy)")
        provider = provider or next(iter(offered))
        if provider not in offered:
            raise SmokeFailure("providers", f"{provider!r} is not offered here; offered: {', '.join(offered)}")
        if not model and not offered[provider]:
            raise SmokeFailure("providers", f"{provider!r} lists no model to pick: pass MODEL=")
        model = model or offered[provider][0]
        self._passed("providers", f"{provider} with {model} (offered: {', '.join(offered)})")
        return provider, model

    def create_session(self, provider: str, model: str) -> str:
        body = self._client.post_json("session", "/sessions",
                                      {"provider": provider, "model": model, "title": "smoke test"})
        session_id = str(body.get("chatSessionId") or "")
        if not session_id:
            raise SmokeFailure("session", f"POST /sessions answered {body!r}, with no chatSessionId")
        self._passed("session", session_id)
        return session_id

    def stream_answer(self, session_id: str) -> StreamReading:
        reading = StreamReading(sent_at=time.perf_counter())
        body = {"chatSessionId": session_id, "content": PROMPT}
        for response, arrived_at, events in self._client.stream("stream", "POST", "/chat/stream", body):
            reading.whole_body = "content-length" in response.headers  # sent with its length: in one piece
            if any(event.event == "token" for event in events):
                reading.read_times.append(arrived_at)
            for event in events:
                _take(reading, event)
        if reading.error is not None:
            raise SmokeFailure("stream", f"the answer ended in error {reading.error.get('code')}: "
                                         f"{reading.error.get('message')}")
        if reading.done is None or reading.message_id is None:
            raise SmokeFailure("stream", "the stream ended without its start and done events")
        problem = streaming_problem(reading.read_times, reading.generation_seconds, reading.whole_body)
        if problem:
            raise SmokeFailure("stream", problem)
        spread = reading.read_times[-1] - reading.read_times[0]
        self._passed("stream", f"{len(reading.text)} characters in {len(reading.read_times)} reads over "
                               f"{spread:.2f} s, generated over {reading.generation_seconds or 0:.2f} s")
        return reading

    def check_stored(self, session_id: str, reading: StreamReading) -> None:
        messages = self._client.get_json("stored", f"/sessions/{session_id}/messages").get("messages", [])
        stored = next((message for message in messages if message.get("messageId") == reading.message_id), None)
        if stored is None:
            raise SmokeFailure("stored", f"message {reading.message_id} is not among the session's messages")
        if stored.get("status") != "complete":
            raise SmokeFailure("stored", f"the stored answer is {stored.get('status')!r}, not 'complete'")
        content = str(stored.get("content"))
        if content != reading.text:
            at = next((i for i, (a, b) in enumerate(zip(content, reading.text, strict=False)) if a != b),
                      min(len(content), len(reading.text)))
            raise SmokeFailure("stored", f"the stored answer ({len(content)} characters) differs from the streamed "
                                         f"text ({len(reading.text)}) from character {at}: "
                                         f"stored {content[at:at + 40]!r}, streamed {reading.text[at:at + 40]!r}")
        self._passed("stored", f"the stored answer equals the streamed text ({len(content)} characters)")

    def resume(self, session_id: str, reading: StreamReading) -> None:
        offset = reading.offsets[len(reading.offsets) // 2]
        path = f"/sessions/{session_id}/messages/{reading.message_id}/stream?offset={offset}"
        resumed = StreamReading(sent_at=time.perf_counter())
        for _, _, events in self._client.stream("resume", "GET", path):
            for event in events:
                _take(resumed, event)
        if resumed.done is None:
            raise SmokeFailure("resume", f"GET {path} ended without done ({resumed.error or 'no terminal event'})")
        expected = reading.text[offset:]
        if resumed.text != expected:
            raise SmokeFailure("resume", f"from offset {offset} it gave {len(resumed.text)} characters "
                                         f"({resumed.text[:40]!r}…), not the last {len(expected)} "
                                         f"({expected[:40]!r}…)")
        self._passed("resume", f"from offset {offset} of {len(reading.text)}: the rest of the text, then done")

    def report(self, reading: StreamReading) -> None:
        done = reading.done or {}
        ttft_ms = (reading.read_times[0] - reading.sent_at) * 1000
        tokens = (done.get("usage") or {}).get("outputTokens")
        spread = reading.read_times[-1] - reading.read_times[0]
        rate = f"{tokens / spread:.1f}" if tokens and spread > 0 else "n/a"
        self._out.write(f"TTFT {ttft_ms:.0f} ms (the relay's: {_number(done.get('ttftMs'), 0)} ms), {rate} tokens/s "
                        f"(the relay's: {_number(done.get('tokensPerSecond'), 1)}), {tokens} output tokens\n")

    def _passed(self, step: str, detail: str) -> None:
        self._out.write(f"ok    {step:<9} {detail}\n")
        self._out.flush()


def _number(value: Any, decimals: int) -> str:
    return f"{value:.{decimals}f}" if isinstance(value, int | float) else "n/a"


def _take(reading: StreamReading, event: ServerSentEvent) -> None:
    data = json.loads(event.data) if event.data.startswith("{") else {}
    if event.event == "start":
        reading.message_id = data.get("messageId")
    elif event.event == "token":
        reading.text += data.get("text", "")
        if event.id is not None and event.id.isdigit():
            reading.offsets.append(int(event.id))
    elif event.event == "done":
        reading.done = data
        reading.message_id = reading.message_id or data.get("messageId")
    elif event.event == "error":
        reading.error = data


def run_smoke(url: str, token: str | None = None, provider: str | None = None, model: str | None = None,
              token_header: str = "authorization", out: TextIO = sys.stdout) -> int:
    client = RelayClient(url, token, token_header)
    run = SmokeRun(client, out)
    try:
        run.health()
        session_id = run.create_session(*run.pick_model(provider, model))
        reading = run.stream_answer(session_id)
        run.check_stored(session_id, reading)
        run.resume(session_id, reading)
        run.report(reading)
    except SmokeFailure as failure:
        out.write(f"FAIL  {failure.step:<9} {failure.reason}\nsmoke test failed against {url}\n")
        return 1
    finally:
        client.close()
    out.write(f"smoke test passed against {url}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the relay, e.g. the stack's ChatFunctionUrl output")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None,
                        help=f"a bearer token (AuthMode jwt); default: ${TOKEN_ENV}")
    parser.add_argument("--token-header", default="authorization",
                        help="where the token goes: x-user-authorization behind CloudFront (AuthMode iam)")
    parser.add_argument("--provider", help="default: the first one GET /providers lists")
    parser.add_argument("--model", help="default: the provider's first model")
    args = parser.parse_args(argv)
    return run_smoke(args.url, args.token, args.provider, args.model, args.token_header)


if __name__ == "__main__":
    sys.exit(main())
