"""Provider keys from the environment or from the Secrets Manager secret (moto's server stands in for AWS)."""

import asyncio
import json
import time

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities import parameters

from relay.config import STORE_CALL_TIMEOUT_SECONDS, Settings
from relay.errors import PROVIDER_AUTH, ProviderError
from relay.providers import keys
from relay.providers.keys import SecretKey, StaticKey, key_source
from relay.providers.registry import ProviderRegistry
from tests.cloudformation import load_template
from tests.outage import FaultyProxy


def forget_clients() -> None:
    """A provider built before the endpoint was set would keep its client (and its cache)."""
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    keys._secrets.cache_clear()


@pytest.fixture()
def secrets(stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", stack.dynamodb.url)
    forget_clients()
    yield boto3.client("secretsmanager", endpoint_url=stack.dynamodb.url, region_name="us-east-1")
    forget_clients()


def test_a_secrets_manager_that_hangs_fails_the_key_within_the_stores_budget(secrets, stack, monkeypatch):
    # GIVEN the secret, behind a network that stops answering
    arn = secrets.create_secret(Name="keys-hung", SecretString=json.dumps({"OPENAI_API_KEY": "sk-x"}))["ARN"]
    proxy = FaultyProxy(stack.dynamodb.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
    forget_clients()
    proxy.pause()

    async def read() -> float:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            await SecretKey("OPENAI_API_KEY", arn).get()
        assert caught.value.code == PROVIDER_AUTH and "arn:" not in caught.value.message
        return time.monotonic() - started

    # WHEN a key is read THEN it fails as provider_auth within the store's budget, not botocore's minutes
    try:
        assert asyncio.run(read()) < STORE_CALL_TIMEOUT_SECONDS + 2
    finally:
        proxy.close()


def test_environment_value_wins_over_the_secret():
    source = key_source("OPENAI_API_KEY", "sk-env", "arn:aws:secretsmanager:us-east-1:0:secret:keys")
    assert isinstance(source, StaticKey)
    assert asyncio.run(source.get()) == "sk-env"


def test_no_environment_value_and_no_secret_means_no_key():
    assert asyncio.run(key_source("OPENAI_API_KEY", None, None).get()) is None


def test_key_is_read_from_the_json_secret(secrets):
    arn = secrets.create_secret(Name="keys-present", SecretString=json.dumps({"OPENAI_API_KEY": "sk-secret"}))["ARN"]
    source = key_source("OPENAI_API_KEY", None, arn)
    assert isinstance(source, SecretKey)
    assert asyncio.run(source.get()) == "sk-secret"


def test_empty_field_in_the_secret_means_no_key(secrets):
    arn = secrets.create_secret(Name="keys-empty", SecretString=json.dumps({"OPENAI_API_KEY": ""}))["ARN"]
    assert asyncio.run(SecretKey("OPENAI_API_KEY", arn).get()) is None


def test_unreadable_secret_is_a_provider_auth_error_without_details(secrets):
    with pytest.raises(ProviderError) as caught:
        asyncio.run(SecretKey("OPENAI_API_KEY", "arn:aws:secretsmanager:us-east-1:000000000000:secret:nope").get())
    assert caught.value.code == PROVIDER_AUTH
    assert "arn:" not in caught.value.message


def configured_providers(settings: Settings) -> set[str]:
    async def configured() -> list[dict[str, object]]:
        async with httpx.AsyncClient() as http:
            return await ProviderRegistry(settings, http).configured()

    return {str(provider["name"]) for provider in asyncio.run(configured())}


def test_every_keyed_provider_finds_its_key_in_the_field_the_templates_secret_declares(secrets):
    # GIVEN the template's secret with each of its fields filled in, and no key in the environment
    fields = json.loads(load_template()["Resources"]["ProviderKeys"]["Properties"]["SecretString"])
    arn = secrets.create_secret(Name="keys-every", SecretString=json.dumps({name: "sk-x" for name in fields}))["ARN"]
    settings = Settings(provider_keys_secret_arn=arn, azure_openai_endpoint="https://relay.openai.azure.com")
    # WHEN the deployment lists the providers it can serve THEN each that takes a key has found its own
    keyed = {"openai", "openai-responses", "anthropic", "gemini", "azure-openai"}
    assert configured_providers(settings) & keyed == keyed
    # AND a secret without those fields configures none of them
    empty = secrets.create_secret(Name="keys-none", SecretString="{}")["ARN"]
    assert configured_providers(Settings(provider_keys_secret_arn=empty,
                                         azure_openai_endpoint="https://relay.openai.azure.com")) & keyed == set()
