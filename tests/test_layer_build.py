"""The layer as layers/relay/Makefile builds it (here for this machine's platform, as the benchmark does): botocore
keeps only the data of the services the code uses, and every client the code creates can still be created from it,
with the endpoints the whole of botocore gives it."""

import json
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
from relay.dynamodb import create_dynamodb_client
from relay.attachments import create_s3_client
create_dynamodb_client()
create_s3_client().generate_presigned_url("put_object", Params={"Bucket": "b", "Key": "k"})
boto3.client("bedrock-runtime")
boto3.client("secretsmanager")  # what Powertools Parameters' get_secret creates
print("ok")
"""
ENDPOINTS = """
import botocore.session
session = botocore.session.get_session()
for region in ("us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"):
    for service in ("dynamodb", "secretsmanager", "bedrock-runtime", "s3"):
        client = session.create_client(service, region_name=region)
        print(region, service, client.meta.endpoint_url, client.meta.region_name)
"""


def kept_services() -> set[str]:
    makefile = (LAYER / "Makefile").read_text()
    return set(re.search(r"^BOTOCORE_SERVICES := (.+)$", makefile, flags=re.MULTILINE).group(1).split())


def test_the_services_kept_are_the_ones_the_code_creates_clients_for():
    sources = "\n".join(path.read_text() for path in (LAYER / "relay").rglob("*.py"))
    created = set(re.findall(r'(?:create_client|boto3\.client)\(\s*"([\w-]+)"', sources))
    uses_secrets = "parameters.SecretsProvider" in sources  # Powertools creates its Secrets Manager client
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


def run_python(script: str, layer: Path | None) -> str:
    """Runs a script with only the built layer on its path (-S: no site-packages, as on Lambda), or, with no layer,
    with this environment's whole botocore."""
    environment = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                   "PATH": "/usr/bin:/bin", **({"PYTHONPATH": str(layer)} if layer else {})}
    done = subprocess.run([sys.executable, *(["-S"] if layer else []), "-c", script], capture_output=True, text=True,
                          env=environment, check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_client_the_code_creates_can_be_created_from_the_built_layer(built):
    assert run_python(CLIENTS, built).strip() == "ok"


def test_its_clients_get_the_endpoints_the_whole_of_botocore_gives_them(built):
    endpoints = run_python(ENDPOINTS, built)
    assert "https://dynamodb.cn-north-1.amazonaws.com.cn cn-north-1" in endpoints
    assert endpoints == run_python(ENDPOINTS, layer=None)


def test_its_endpoint_table_names_only_those_services(built):
    table = json.loads((built / "botocore" / "data" / "endpoints.json").read_text())
    named = {service for partition in table["partitions"] for service in partition["services"]}
    assert named and named <= kept_services()
