"""`sam local invoke` as the README documents it, without Docker: SAM CLI's own code (devtools/sam_environment.py,
run in .venv-sam) resolves the environment the documented command gives the function, and every event in events/
runs through the app started with exactly that environment by the function's own run.sh, against the test stack's
DynamoDB and simulated provider. Only the container's networking is stood in for: `host.docker.internal:<port>` is
where the test stack's backends listen, and the app's PORT is a free one."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.invoke import SAM_LOCAL_ENV_FILE, event_files, invoke
from devtools.local_run import DEFAULT_DYNAMODB_PORT, DEFAULT_PROVIDER_PORT, LIMITS_TABLE_NAME, TABLE_NAME, LocalRun
from tests.cloudformation import load_template
from tests.helpers import check_event_answer

ROOT = Path(__file__).resolve().parent.parent
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
DOCKER_HOST = "host.docker.internal"
EVENTS = event_files()


def documented_command() -> list[str]:
    """The `sam local invoke` command line in the README, as the arguments after `sam`."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^\S*sam (local invoke (?:.*\\\n)*.*)$", readme, flags=re.MULTILINE)
    assert match, "the README shows no `sam local invoke` command"
    return shlex.split(match.group(1).replace("\\\n", " "))


@pytest.fixture(scope="module")
def sam_python() -> Path:
    if subprocess.run([SAM_PYTHON, "-c", "import samcli"], capture_output=True).returncode != 0:
        # `make test` installs it first; this is for a test run on its own (~30-45 s, once).
        subprocess.run(["make", "--no-print-directory", "sam-cli"], cwd=ROOT, check=True)
    return SAM_PYTHON


@pytest.fixture(scope="module")
def sam_environment(sam_python, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    shell = {
        "PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT),
        "SAM_CLI_TELEMETRY": "0",
        # The developer's AWS configuration, stood in for: SAM CLI hands the shell's credentials to the function.
        "AWS_ACCESS_KEY_ID": "local-key", "AWS_SECRET_ACCESS_KEY": "local-secret",
        "AWS_CONFIG_FILE": str(home / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run([sam_python, "-m", "devtools.sam_environment", *documented_command()], cwd=ROOT,
                            env=shell, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    environment: dict[str, str] = json.loads(result.stdout)
    return environment


def on_this_machine(environment: dict[str, str], stack: LocalRun) -> dict[str, str]:
    """The environment as the container's network sees it, where the test stack's backends listen."""
    ports = {f"{DOCKER_HOST}:{DEFAULT_DYNAMODB_PORT}": stack.dynamodb.url.removeprefix("http://"),
             f"{DOCKER_HOST}:{DEFAULT_PROVIDER_PORT}": stack.provider_server.url.removeprefix("http://")}
    local = {}
    for name, value in environment.items():
        for container_view, host_view in ports.items():
            value = value.replace(container_view, host_view)
        local[name] = value
    return local


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def function_url(stack, sam_environment, tmp_path_factory) -> Iterator[str]:
    """The app as the adapter starts it: run.sh, in the code directory, with the resolved environment only."""
    environment = on_this_machine(sam_environment, stack)
    environment["PORT"] = str(free_port())  # the container's own port, here one free on this machine
    # What the Lambda runtime adds: the interpreter on PATH and the layer on PYTHONPATH (/opt/python there).
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment["PYTHONPATH"] = str(ROOT / "layers" / "relay")
    log = tmp_path_factory.mktemp("function") / "output.log"
    with log.open("w") as output:
        process = subprocess.Popen(["bash", "run.sh"], cwd=ROOT / "functions" / "chat", env=environment,
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{environment['PORT']}"
    try:
        wait_until_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """As the adapter does: poll the readiness path until it answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the function exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the function did not become ready:\n{log.read_text()}")


def test_the_readme_documents_the_env_file_the_overrides_and_the_local_runs_region():
    command = documented_command()
    assert command[:3] == ["local", "invoke", "ChatFunction"]
    assert command[command.index("--env-vars") + 1] == SAM_LOCAL_ENV_FILE.relative_to(ROOT).as_posix()
    assert command[command.index("--region") + 1] == "us-east-1"


def test_sam_cli_resolves_the_template_the_overrides_and_the_env_file_into_a_local_environment(sam_environment):
    # Template defaults and SAM CLI's own variables...
    assert sam_environment["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert sam_environment["AWS_LAMBDA_FUNCTION_NAME"] == "ChatFunction"
    assert sam_environment["AWS_REGION"] == "us-east-1"
    # ...the parameter overrides...
    assert sam_environment["AUTH_MODE"] == "none" and sam_environment["ALLOW_UNAUTHENTICATED"] == "true"
    # ...and the env file, over what a `!Ref` to a resource becomes locally (its logical id).
    assert sam_environment["TABLE_NAME"] == TABLE_NAME and sam_environment["LIMITS_TABLE_NAME"] == LIMITS_TABLE_NAME
    assert sam_environment["PROVIDER_KEYS_SECRET_ARN"] == ""
    assert sam_environment["AWS_ENDPOINT_URL_DYNAMODB"] == f"http://{DOCKER_HOST}:{DEFAULT_DYNAMODB_PORT}"


def test_every_variable_in_the_env_file_is_one_the_template_declares():
    # SAM CLI silently drops an --env-vars entry for a variable the template does not declare.
    declared = load_template()["Resources"]["ChatFunction"]["Properties"]["Environment"]["Variables"]
    overrides: dict[str, Any] = json.loads(SAM_LOCAL_ENV_FILE.read_text())
    assert list(overrides) == ["ChatFunction"]
    assert set(overrides["ChatFunction"]) <= set(declared)


def test_the_env_file_names_the_ports_make_dev_serves_on():
    overrides = json.loads(SAM_LOCAL_ENV_FILE.read_text())["ChatFunction"]
    assert overrides["AWS_ENDPOINT_URL_DYNAMODB"] == f"http://{DOCKER_HOST}:{DEFAULT_DYNAMODB_PORT}"
    assert overrides["SIMULATED_PROVIDER_URL"] == f"http://{DOCKER_HOST}:{DEFAULT_PROVIDER_PORT}/v1"


@pytest.mark.parametrize("path", EVENTS, ids=[path.name for path in EVENTS])
def test_every_event_runs_through_the_function_started_with_the_resolved_environment(function_url, path):
    event = json.loads(path.read_text())
    check_event_answer(event, list(invoke(event, function_url)))


def test_the_templates_empty_endpoint_is_unset_for_botocore(monkeypatch):
    # Deployed, AWS_ENDPOINT_URL_DYNAMODB is "" (declared only for the env file): DynamoDB's own endpoint is used.
    from relay.store import create_dynamodb_client

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert create_dynamodb_client().meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_the_templates_empty_simulated_provider_url_offers_no_simulated_provider():
    from relay.config import Settings

    assert Settings.from_environment({"SIMULATED_PROVIDER_URL": ""}).simulated_provider_url is None
