"""The benchmark's real-world latencies: DynamoDB and the simulated provider behind TLS and a latency-injecting
proxy (devtools/latency_proxy.py), so that connecting and every round trip cost what they cost across a network.

    relay ──TLS──► proxy (20 ms RTT) ──► TLS terminator ──► moto's DynamoDB
    relay ──TLS──► proxy (60 ms RTT) ──► TLS terminator ──► the simulated provider    (and three spare origins)

The certificate comes from a certificate authority made for the run (trustme) that the relay processes trust
through ``SSL_CERT_FILE`` (httpx) and ``AWS_CA_BUNDLE`` (botocore). Names are not resolved (the URLs hold
127.0.0.1): DNS is the one part of a real connection this leaves out. It runs in a process of its own, like the
backends, so its timers do not wait for the benchmark's client:

    python -m devtools.bench_network DYNAMODB_URL PROVIDER_URL DIRECTORY   # prints its environment as JSON, then
                                                                           # serves until its stdin ends
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from devtools.latency_proxy import LatencyProxy

DYNAMODB_RTT_MS = 20.0  # a client and DynamoDB in the same region: a few milliseconds, more across zones; 20 is safe
PROVIDER_RTT_MS = 60.0  # a function in one region, a provider's front end in another (us-east-1 to us-west-2 ~65)
SPARE_PROVIDER_ORIGINS = 3  # other providers' origins, to measure what warming origins that are never used costs


class NetworkBackends:
    """The parent's side: starts the process and holds the environment a relay needs to go through it."""

    def __init__(self, dynamodb_url: str, provider_url: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-m", "devtools.bench_network", dynamodb_url, provider_url,
                                         str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        served = json.loads(self.process.stdout.readline())
        self.spare_origins: list[str] = served.pop("spare_origins")
        self.environment: dict[str, str] = served

    def stop(self) -> None:
        from devtools.bench import stop_process

        assert self.process.stdin is not None
        self.process.stdin.close()
        stop_process(self.process)


def serve(dynamodb_url: str, provider_url: str, directory: Path) -> None:
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "bench-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_tls)

    def behind_tls(url: str, rtt_ms: float, count: int = 1) -> list[LatencyProxy]:
        parsed = httpx.URL(url)
        terminator = LatencyProxy((parsed.host, parsed.port or 80), tls=server_tls).start()
        proxies.append(terminator)
        started = [LatencyProxy(terminator.address, rtt_ms).start() for _ in range(count)]
        proxies.extend(started)
        return started

    proxies: list[LatencyProxy] = []
    [dynamodb] = behind_tls(dynamodb_url, DYNAMODB_RTT_MS)
    provider, *spares = behind_tls(provider_url, PROVIDER_RTT_MS, 1 + SPARE_PROVIDER_ORIGINS)
    print(json.dumps({
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.url("https"),
        "SIMULATED_PROVIDER_URL": provider.url("https") + "/v1",
        "SSL_CERT_FILE": str(ca_file),
        "AWS_CA_BUNDLE": str(ca_file),
        "spare_origins": [spare.url("https") for spare in spares],
    }), flush=True)
    sys.stdin.read()
    for proxy in reversed(proxies):
        proxy.stop()


def spare_providers(origins: list[str]) -> dict[str, str]:
    """The environment that configures three more providers, each at one of these origins (never asked)."""
    openai, anthropic, gemini = origins
    return {"OPENAI_API_KEY": "spare", "OPENAI_BASE_URL": openai + "/v1", "ANTHROPIC_API_KEY": "spare",
            "ANTHROPIC_BASE_URL": anthropic, "GEMINI_API_KEY": "spare", "GOOGLE_GEMINI_BASE_URL": gemini}


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
