"""The whole relay on loopback with no Docker and no keys: embedded DynamoDB and S3, simulated provider, the app.

``python -m devtools.local_run`` (what ``make dev`` runs) serves the app on ``PORT`` (default 3000) in the
foreground, with DynamoDB and S3 (one moto server) on ``DYNAMODB_PORT`` (3001) and the simulated provider on
``SIMULATED_PROVIDER_PORT`` (3002): fixed, so that ``events/sam-local-env.json`` can name them for ``sam local
invoke``. Tests and ``devtools.invoke`` start the same stack on free ports with ``LocalRun(port=0).start()``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from devtools.page_headers import page_headers, with_sources
from devtools.servers import (
    HOST,
    DynamoDBThread,
    UvicornThread,
    allow_uploads_from,
    create_bucket,
    create_table,
    dynamodb_client,
    first_taken,
    free_port_after,
    s3_client,
)
from devtools.simulated_provider import Scenario, SimulatedProvider
from devtools.terminal import DevOutput, send_relay_logs_to
from relay.config import ANY_MODEL, DEFAULT_MODELS, models_variable

DEFAULT_PORT = 3000
# `make dev`'s backends, on the ports events/sam-local-env.json names (a test keeps the two in step).
DEFAULT_DYNAMODB_PORT = 3001
DEFAULT_PROVIDER_PORT = 3002
PORT_ENV = "PORT"
DYNAMODB_PORT_ENV = "DYNAMODB_PORT"
PROVIDER_PORT_ENV = "SIMULATED_PROVIDER_PORT"
# Where the backends listen: loopback, unless a container must reach them (`sam local invoke` on Linux's Docker
# Engine reaches the host at the docker bridge's address, 172.17.0.1 on a default install).
BACKEND_HOST_ENV = "BACKEND_HOST"
DEFAULT_LOG = ".local/dev.log"  # where `make report` (devtools.report) finds the EMF lines
TABLE_NAME = "chat-relay-local"
LIMITS_TABLE_NAME = "chat-relay-local-limits"
ATTACHMENTS_BUCKET = "chat-relay-local-attachments"
# A fixed session that exists from the start, so the README's curl example and events/*.json work as they are.
DEMO_SESSION_ID = "01HZY00000000000000000DEM0"
DEMO_MODEL = "sim"
WEB_DIRECTORY = Path(__file__).resolve().parent.parent / "web"

LOCAL_ENVIRONMENT = {
    # Credentials and region for the embedded DynamoDB only; nothing here reaches AWS.
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "TABLE_NAME": TABLE_NAME,
    "LIMITS_TABLE_NAME": LIMITS_TABLE_NAME,
    "ATTACHMENTS_BUCKET": ATTACHMENTS_BUCKET,
    "POWERTOOLS_SERVICE_NAME": "chat-relay",
    "POWERTOOLS_METRICS_NAMESPACE": "ChatRelay",
}
# Defaults a developer may override from the shell (AUTH_MODE=jwt with JWT_ISSUER=..., stricter limits, ...).
LOCAL_DEFAULTS = {
    "AUTH_MODE": "none",
    "RATE_LIMIT_REQUESTS_PER_MINUTE": "60",
    "RATE_LIMIT_CONCURRENT_STREAMS": "5",
    "CORS_ALLOW_ORIGINS": "http://localhost:3000,http://127.0.0.1:3000",
    "METRICS_MODEL_DIMENSION": "any",  # each simulated scenario its own model in `make report`
    # The simulated Bedrock's scenarios take images (the other formats' unknown model names do by default).
    "IMAGE_MODELS": "bedrock/sim*",
}


class LocalRun:
    def __init__(self, port: int = DEFAULT_PORT, provider_defaults: Scenario | None = None, *, dynamodb_port: int = 0,
                 provider_port: int = 0, backend_host: str = HOST) -> None:
        self.port = port
        self.dynamodb = DynamoDBThread(dynamodb_port, backend_host)
        self.provider = SimulatedProvider(provider_defaults)
        self.provider_server = UvicornThread(self.provider.app, provider_port, backend_host)
        self.app_server: UvicornThread | None = None

    def start_backends(self) -> None:
        """DynamoDB with the table and the demo session, and the simulated provider; sets the app's environment."""
        self.dynamodb.start()
        self.provider_server.start()
        os.environ.update(LOCAL_ENVIRONMENT)
        for name, value in LOCAL_DEFAULTS.items():
            os.environ.setdefault(name, value)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb.url
        # The same moto server; a presigned upload URL names it, so the browser PUTs images to it on loopback.
        os.environ["AWS_ENDPOINT_URL_S3"] = self.dynamodb.url
        os.environ["SIMULATED_PROVIDER_URL"] = self.provider_server.url + "/v1"
        self.simulated = _simulate_unconfigured_providers(self.provider_server.url)
        client = self.dynamodb_client()
        create_table(client, TABLE_NAME, session_index=True)
        create_table(client, LIMITS_TABLE_NAME)
        create_bucket(self.s3_client(), ATTACHMENTS_BUCKET, self.page_origins())
        _seed_demo_session(client)

    def dynamodb_client(self) -> Any:
        return dynamodb_client(self.dynamodb.url)

    def s3_client(self) -> Any:
        return s3_client(self.dynamodb.url)

    def create_app(self) -> Any:
        from relay.app import create_app

        app = create_app()
        app.router.routes.extend(web_routes(bucket_origin=self.dynamodb.url))
        return app

    def start(self) -> LocalRun:
        self.start_backends()
        self.app_server = UvicornThread(self.create_app(), port=self.port).start()
        if not self.port:  # a free port: the page's origin is known only now
            allow_uploads_from(self.s3_client(), ATTACHMENTS_BUCKET, self.page_origins())
        return self

    def page_origins(self) -> list[str]:
        """Where the page is served from (the app's address, by either name of loopback) and CORS_ALLOW_ORIGINS:
        the origins that upload images to the bucket."""
        port = self.app_server.url.rpartition(":")[2] if self.app_server else str(self.port)
        served = [f"http://{host}:{port}" for host in ("127.0.0.1", "localhost")]
        listed = [origin for origin in os.environ.get("CORS_ALLOW_ORIGINS", "").split(",") if origin]
        return list(dict.fromkeys([*served, *listed]))

    @property
    def url(self) -> str:
        assert self.app_server is not None, "start() first"
        return self.app_server.url

    def stop(self) -> None:
        for server in (self.app_server, self.provider_server, self.dynamodb):
            if server is not None:
                server.stop()


def web_routes(directory: Path = WEB_DIRECTORY, bucket_origin: str | None = None) -> list[Any]:
    """The chat page, one route per file or folder of ``directory``, each with the page's security headers
    (devtools/page_headers.py), its policy widened by the attachments bucket's origin (the page uploads images
    there and shows them from there) when there is one. A catch-all mount at "/" would answer for the API's paths
    too (a GET of /chat/stream would be the page's 404 instead of the API's 405)."""
    bucket = [bucket_origin] if bucket_origin else []

    def index_html() -> str:  # read at each request, so an edit of index.html shows at the next reload
        return with_sources((directory / "index.html").read_text(encoding="utf-8"), connect=bucket, images=bucket)

    def headers() -> dict[str, str]:
        return page_headers(index_html())

    def serve(path: Path) -> Callable[[Request], Response]:
        return lambda request: FileResponse(path, headers=headers())

    def serve_index(request: Request) -> Response:
        html = index_html()
        return HTMLResponse(html, headers=page_headers(html))

    routes: list[Any] = [Route("/", serve_index, methods=["GET"])]
    for path in sorted(directory.iterdir()):
        if path.name == "index.html":
            routes.append(Route("/index.html", serve_index, methods=["GET"]))
        elif path.is_dir():
            routes.append(Mount(f"/{path.name}", app=StaticFilesWithHeaders(directory=path, headers=headers)))
        else:
            routes.append(Route(f"/{path.name}", serve(path), methods=["GET"]))
    return routes


class StaticFilesWithHeaders(StaticFiles):
    """A folder of the page (vendor/), served with the page's headers."""

    def __init__(self, *, directory: Path, headers: Callable[[], dict[str, str]]) -> None:
        super().__init__(directory=directory)
        self.page_headers = headers

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.page_headers())
        return response


# Each provider whose key is not set talks to the simulated server, in its own wire format.
SIMULATED_PROVIDERS = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", ""),
    "azure-openai": ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", ""),
    "bedrock": ("BEDROCK_MODELS", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", ""),
}


def _simulate_unconfigured_providers(simulator_url: str) -> list[str]:
    simulated = []
    for name, (key_variable, url_variable, path) in SIMULATED_PROVIDERS.items():
        if os.environ.get(key_variable):
            continue
        os.environ[key_variable] = "sim,*" if name == "bedrock" else "simulated"
        os.environ[url_variable] = simulator_url + path
        simulated.append(name)
    if "openai" in simulated:
        simulated.append("openai-responses")
    for name in simulated:  # their listed models, and any scenario ("*") beside them
        models = DEFAULT_MODELS.get(name) or ["sim"]
        os.environ.setdefault(models_variable(name), ",".join([*models, ANY_MODEL]))
    return simulated


def _seed_demo_session(client: Any) -> None:
    from relay.auth import LOCAL_USER
    from relay.records import ChatSession
    from relay.store import ChatStore

    store = ChatStore(TABLE_NAME, ttl_days=365, client_factory=lambda: client)
    session = ChatSession(DEMO_SESSION_ID, "simulated", DEMO_MODEL, "2026-01-01T00:00:00.000Z", title="Demo session",
                          owner_id=LOCAL_USER)
    asyncio.run(store.create_session(session))


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable) or default)


def port_in_use(ports: dict[str, tuple[str, int]]) -> str | None:
    """What to tell the developer when one of the stack's ports (by the variable that moves it) cannot be had: in
    use, or the same as another's. The port suggested is free now and none of the others."""
    taken = first_taken(list(ports.values()))
    if taken is None:
        return None
    variable = list(ports)[taken]
    host, port = ports[variable]
    others = {other_port for name, (_, other_port) in ports.items() if name != variable}
    return f"port {port} is in use — try `{variable}={free_port_after(host, port, others)} make dev`"


def main(argv: list[str] | None = None) -> int:
    defaults = Scenario()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=_port(PORT_ENV, DEFAULT_PORT))
    parser.add_argument("--dynamodb-port", type=int, default=_port(DYNAMODB_PORT_ENV, DEFAULT_DYNAMODB_PORT),
                        help="0 for any free port")
    parser.add_argument("--provider-port", type=int, default=_port(PROVIDER_PORT_ENV, DEFAULT_PROVIDER_PORT),
                        help="the simulated provider's; 0 for any free port")
    parser.add_argument("--backend-host", default=os.environ.get(BACKEND_HOST_ENV) or HOST,
                        help="the address DynamoDB and the simulated provider listen on")
    parser.add_argument("--first-token-ms", type=float, default=defaults.first_token_ms)
    parser.add_argument("--tokens-per-second", type=float, default=defaults.tokens_per_second)
    parser.add_argument("--tokens", type=int, default=defaults.tokens)
    parser.add_argument("--log", type=Path, default=Path(DEFAULT_LOG), help="where the JSON logs and EMF go")
    parser.add_argument("--verbose", action="store_true", help="the JSON logs and EMF in the terminal too "
                        "(`make dev VERBOSE=1`); else one line per turn")
    args = parser.parse_args(argv)
    # In the order they start: a PORT set to a backend's port is the one told to move.
    refusal = port_in_use({DYNAMODB_PORT_ENV: (args.backend_host, args.dynamodb_port),
                           PROVIDER_PORT_ENV: (args.backend_host, args.provider_port), PORT_ENV: (HOST, args.port)})
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    args.log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout = DevOutput(sys.stdout, args.log.open("a", encoding="utf-8"), verbose=args.verbose)
    send_relay_logs_to(sys.stdout)

    run = LocalRun(args.port, Scenario(args.first_token_ms, args.tokens_per_second, args.tokens),
                   dynamodb_port=args.dynamodb_port, provider_port=args.provider_port,
                   backend_host=args.backend_host).start()
    auth = ("none: local only, every request is one user (AUTH_MODE=jwt with JWT_ISSUER to try tokens)"
            if os.environ["AUTH_MODE"] == "none" else os.environ["AUTH_MODE"])
    real = sorted((set(SIMULATED_PROVIDERS) | {"openai-responses"}) - set(run.simulated))
    shown = "shown here too" if args.verbose else "`make dev VERBOSE=1` shows them here too"
    print(
        f"""
Chat relay running at {run.url}   (Ctrl-C stops it)
  chat page           {run.url}/   (open it in a browser)
  embedded DynamoDB   {run.dynamodb.url}  table {TABLE_NAME}, in memory: the history is gone when this stops
  embedded S3         {run.dynamodb.url}  bucket {ATTACHMENTS_BUCKET} (images, uploaded from the page), in memory too
  simulated provider  {os.environ['SIMULATED_PROVIDER_URL']}
  simulated in their own wire format: {", ".join(run.simulated) or "none"}
  real (their keys are set): {", ".join(real) or "none"}
  authentication      {auth}

Each turn shows here as one line: provider, model, status, time to first token, tokens/s.
The JSON logs and EMF go to {args.log} ({shown}); `make report` summarises them.

Stream an answer into the demo session:
  curl -N {run.url}/chat/stream -H 'Content-Type: application/json' \\
    -d '{{"chatSessionId": "{DEMO_SESSION_ID}", "content": "Hello!"}}'

Or open a session of your own:
  curl -s {run.url}/sessions -H 'Content-Type: application/json' -d '{{"provider": "simulated", "model": "sim"}}'
""",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
