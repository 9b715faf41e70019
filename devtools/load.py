"""A bounded load test on loopback: many streams at once for a while, then every message checked.

    python -m devtools.load                    # 100 streams at once for about 60 s (make load)
    python -m devtools.load --streams 5 --seconds 5

The relay runs in its own process as on Lambda; moto and the simulated provider run here. Each worker keeps one
session and sends turns back to back until the time is up. Then every session is read back: each turn must have
left exactly one user message and one complete answer holding exactly the text streamed, and nothing may be left
streaming. It prints what it saw, the relay's time to first token among it, and exits 1 on any lost or stuck
message. It never asserts a timing, and only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import httpx

from devtools.bench import RelayProcess, new_session, relay_ttft
from devtools.local_run import LocalRun
from devtools.report import percentile
from devtools.simulated_provider import Scenario, answer_tokens

TOKENS = 20
MODEL = f"sim:first_token_ms=0,tokens_per_second=40,tokens={TOKENS}"


async def worker(client: httpx.AsyncClient, url: str, session_id: str, until: float, ttfts: list[float]) -> int:
    turns = 0
    while time.monotonic() < until:
        ttft, tokens = await relay_ttft(client, url, session_id)
        if tokens == TOKENS:
            ttfts.append(ttft)
        turns += 1
    return turns


def check(url: str, session_id: str, turns: int) -> list[str]:
    messages = httpx.get(f"{url}/sessions/{session_id}/messages", timeout=30).json()["messages"]
    problems = []
    users = [m for m in messages if m["role"] == "user"]
    answers = [m for m in messages if m["role"] == "ai"]
    if len(users) != turns or len(answers) != turns:
        problems.append(f"{session_id}: {turns} turns sent, {len(users)} user messages, {len(answers)} answers")
    expected = "".join(answer_tokens(TOKENS))
    for answer in answers:
        if answer["status"] != "complete" or answer["content"] != expected:
            problems.append(f"{session_id}/{answer['messageId']}: {answer['status']}, {len(answer['content'])} chars")
    return problems


async def run(streams: int, seconds: float, relay: RelayProcess) -> int:
    sessions = [new_session(relay.url, MODEL) for _ in range(streams)]
    ttfts: list[float] = []
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        turns = await asyncio.gather(*(worker(client, relay.url, s, until, ttfts) for s in sessions))
    problems = [p for session, count in zip(sessions, turns, strict=True) for p in check(relay.url, session, count)]
    print(f"{sum(turns)} turns over {streams} streams in about {seconds:.0f} s; "
          f"{len(problems)} lost or stuck messages")
    if ttfts:
        print("time to first token through the relay (the simulated provider adds none): "
              + " / ".join(f"p{p} {percentile(ttfts, p):.1f} ms" for p in (50, 90, 99)))
    for problem in problems[:20]:
        print("  " + problem)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    local = LocalRun(port=0, provider_defaults=Scenario(first_token_ms=0, tokens_per_second=0, tokens=5))
    os.environ.update(RATE_LIMIT_REQUESTS_PER_MINUTE="0", RATE_LIMIT_CONCURRENT_STREAMS="0")
    local.start_backends()
    try:
        relay = RelayProcess()
        relay.wait_ready()
        try:
            return asyncio.run(run(args.streams, args.seconds, relay))
        finally:
            relay.stop()
    finally:
        local.stop()


if __name__ == "__main__":
    sys.exit(main())
