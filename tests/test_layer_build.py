"""The layer as layers/relay/Makefile builds it (here for this machine's platform, as the benchmark does): botocore
keeps only the service models the code uses, and every client the code creates can still be created from it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench import build_layer

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "relay"
CLIENTS = """
import botocore.session, boto3
from relay.store import create_dynamodb_client
create_dynamodb_client()
boto3.client("bedrock-runtime")
boto3.client("secretsmanager")  # what Powertools Parameters' get_secret creates
print("ok")
"""


def kept_services() -> set[str]:
    makefile = (LAYER / "Makefile").read_text()
    return set(re.search(r"^BOTOCORE_SERVICES := (.+)$", makefile, flags=re.MULTILINE).group(1).split())


def test_the_services_kept_are_the_ones_the_code_creates_clients_for():
    sources = "\n".join(path.read_text() for path in (LAYER / "relay").rglob("*.py"))
    created = set(re.findall(r'(?:create_client|boto3\.client)\(\s*"([\w-]+)"', sources))
    uses_secrets = "parameters.get_secret" in sources
    assert created | ({"secretsmanager"} if uses_secrets else set()) == kept_services()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_layer(tmp_path_factory.mktemp("layer"))


def test_the_built_layer_holds_only_those_models_and_compiled_bytecode(built):
    models = {path.name for path in (built / "botocore" / "data").iterdir() if path.is_dir()}
    assert models == kept_services()
    assert list((built / "relay" / "__pycache__").glob("store.cpython-*.pyc"))
    assert list((built / "httpx" / "__pycache__").glob("_client.cpython-*.pyc"))


def test_all_of_its_bytecode_stays_valid_whatever_timestamps_the_zip_gives(built):
    # A timestamp-checked .pyc (pip's kind) turns stale when a zip changes the source's mtime, and then Python
    # compiles that module on every cold start, since /opt is read-only. Unchecked-hash ones never do.
    unchecked_hash = 0b01  # the flags word of the .pyc header (PEP 552)
    flags = {path: int.from_bytes(path.read_bytes()[4:8], "little") for path in built.rglob("*.pyc")}
    assert len(flags) > 500
    assert [str(path) for path, value in flags.items() if value != unchecked_hash] == []


def test_every_client_the_code_creates_can_be_created_from_the_built_layer(built):
    # -S: no site-packages, so everything comes from the layer, as on Lambda
    environment = {"PYTHONPATH": str(built), "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x",
                   "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-S", "-c", CLIENTS], capture_output=True, text=True, env=environment,
                          check=False, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
