"""What cfn-lint cannot see: the values that make the function URL stream, and the template in step with the code."""

import os
import re
from pathlib import Path
from typing import Any

import pytest

from relay.store import TABLE_KEY_SCHEMA, TTL_ATTRIBUTE
from tests.cloudformation import load_template

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def function(template) -> dict[str, Any]:
    return template["Resources"]["ChatFunction"]["Properties"]


def test_function_url_streams(function):
    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"


def test_adapter_runs_in_response_stream_mode(function):
    env = function["Environment"]["Variables"]
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"


def test_adapter_layer_and_relay_layer_match_the_functions_architecture(template, function):
    [architecture] = function["Architectures"]
    adapter = str(function["Layers"][0])
    assert "753240598075:layer:LambdaAdapterLayer" in adapter
    assert ("Arm64" in adapter) == (architecture == "arm64")
    layer = template["Resources"]["RelayLayer"]
    assert layer["Metadata"]["BuildArchitecture"] == architecture  # cryptography is compiled
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]


def test_readiness_path_is_the_apps_health_route(function):
    from relay.app import create_app

    path = function["Environment"]["Variables"]["AWS_LWA_READINESS_CHECK_PATH"]
    routes = {route.path for route in create_app().routes}
    assert path in routes


def test_handler_is_an_executable_run_script_that_starts_uvicorn_on_port(function):
    run_sh = ROOT / function["CodeUri"] / function["Handler"]
    assert run_sh.name == "run.sh"
    assert os.access(run_sh, os.X_OK)
    text = run_sh.read_text()
    assert "exec python -m uvicorn" in text and '--port="$PORT"' in text and "app:app" in text
    assert function["Environment"]["Variables"]["PORT"]


def test_runtime_matches_the_local_python_and_the_layer_build(template, function):
    local = (ROOT / ".python-version").read_text().strip()
    assert function["Runtime"] == f"python{local}"
    layer = template["Resources"]["RelayLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    layer_makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
    assert f"--python-version {local}" in layer_makefile and "compileall" in layer_makefile
    assert layer["Properties"]["CompatibleRuntimes"] == [f"python{local}"]
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()
    assert (ROOT / layer["Properties"]["ContentUri"] / "relay" / "__init__.py").is_file()


def test_table_keys_and_ttl_match_the_store(template):
    table = template["Resources"]["ChatTable"]["Properties"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == TABLE_KEY_SCHEMA
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_function_may_use_only_the_table_operations_the_store_calls(function):
    store_source = "".join((ROOT / "layers/relay/relay" / name).read_text() for name in ("store.py", "limits.py"))
    called = set(re.findall(r'call\(\s*"(\w+)"', store_source))
    statements = function["Policies"][0]["Statement"]
    granted: dict[str, list[Any]] = {}
    for statement in statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            granted.setdefault(action, []).extend(resources)
    # a transaction needs the permissions of its parts (here a condition check and a put), not one of its own
    parts = {"transact_write_items": ["condition_check_item", "put_item", "update_item"]}
    as_actions = {"dynamodb:" + "".join(part.title() for part in name.split("_"))
                  for call in called for name in parts.get(call, [call])}
    assert as_actions == set(granted)
    chat, limits = {"Fn::GetAtt": "ChatTable.Arn"}, {"Fn::GetAtt": "LimitsTable.Arn"}
    assert granted["dynamodb:Query"] == granted["dynamodb:PutItem"] == granted["dynamodb:ConditionCheckItem"] == [chat]
    assert granted["dynamodb:GetItem"] == granted["dynamodb:DeleteItem"] == [chat]
    assert granted["dynamodb:UpdateItem"] == [chat, limits]  # checkpoints and cancel requests; counters


def test_powertools_environment_matches_the_metrics_the_dashboard_reads(template, function):
    env = function["Environment"]["Variables"]
    body = str(template["Resources"]["RelayDashboard"]["Properties"]["DashboardBody"])
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    assert f'"{namespace}", "TimeToFirstToken", "service", "{service}"' in body


def test_url_is_an_output(template):
    assert template["Outputs"]["ChatFunctionUrl"]["Value"] == {"Fn::GetAtt": "ChatFunctionUrl.FunctionUrl"}


def test_one_parameter_switches_both_xray_and_the_apps_tracer(template, function):
    assert template["Parameters"]["EnableTracing"]["Default"] == "false"
    assert function["Environment"]["Variables"]["TRACING_ENABLED"] == {"Ref": "EnableTracing"}
    assert function["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]}


def test_every_environment_variable_the_template_sets_is_one_something_reads(function):
    # A misspelt variable is silently ignored: each must be read by the relay, the adapter or Powertools.
    library = "".join(path.read_text() for path in (ROOT / "layers/relay/relay").rglob("*.py"))
    read_elsewhere = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "AWS_LWA_READINESS_CHECK_PATH", "PORT",
                      "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "AWS_ENDPOINT_URL_DYNAMODB"}
    for name in function["Environment"]["Variables"]:
        assert name in read_elsewhere or f'"{name}"' in library or name.endswith("_MODELS"), name


def test_bedrock_permission_is_granted_only_when_models_are_offered(template, function):
    [conditional] = [policy for policy in function["Policies"] if "Fn::If" in policy]
    condition, granted, otherwise = conditional["Fn::If"]
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockModels"}, ""]}]}
    assert granted["Statement"][0]["Action"] == "bedrock:InvokeModelWithResponseStream"
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert function["Environment"]["Variables"]["BEDROCK_MODELS"] == {"Ref": "BedrockModels"}


def test_provider_keys_secret_names_each_keyed_provider_by_its_sdk_variable(template):
    import json

    keys = json.loads(template["Resources"]["ProviderKeys"]["Properties"]["SecretString"])
    assert set(keys) == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"}
    library = (ROOT / "layers/relay/relay/providers/__init__.py").read_text()
    for name in keys:
        assert f'key_source("{name}"' in library


def test_cors_allowlist_is_one_parameter_for_the_url_and_the_app_without_wildcard_or_credentials(template, function):
    cors = function["FunctionUrlConfig"]["Cors"]
    assert cors["AllowOrigins"] == {"Ref": "AllowedOrigins"}
    joined = {"Fn::Join": [",", {"Ref": "AllowedOrigins"}]}
    assert function["Environment"]["Variables"]["CORS_ALLOW_ORIGINS"] == joined
    assert cors["AllowCredentials"] is False
    assert "*" not in template["Parameters"]["AllowedOrigins"]["Default"]
    from relay.app import CORS_ALLOW_HEADERS

    assert set(cors["AllowHeaders"]) == set(CORS_ALLOW_HEADERS)


def test_auth_mode_picks_the_url_auth_type_and_none_needs_consent(template, function):
    assert template["Parameters"]["AuthMode"]["Default"] == "jwt"
    assert function["FunctionUrlConfig"]["AuthType"] == {"Fn::If": ["IsPublicUrl", "NONE", "AWS_IAM"]}
    assert template["Conditions"]["IsPublicUrl"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AuthMode"}, "iam"]}]}
    rule = template["Rules"]["UnauthenticatedNeedsConsent"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "none"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "AllowUnauthenticated"}, "true"]}
    env = function["Environment"]["Variables"]
    assert env["AUTH_MODE"] == {"Ref": "AuthMode"}
    assert env["ALLOW_UNAUTHENTICATED"] == {"Ref": "AllowUnauthenticated"}


def test_cloudfront_origin_access_control_is_optional_and_signs_requests_to_the_url(template):
    resources = template["Resources"]
    iam = {"Fn::Equals": [{"Ref": "AuthMode"}, "iam"]}
    wanted = {"Fn::Equals": [{"Ref": "CreateCloudFront"}, "true"]}
    assert template["Conditions"]["UseCloudFront"] == {"Fn::And": [iam, wanted]}
    oac = resources["RelayOriginAccessControl"]
    assert oac["Condition"] == "UseCloudFront"
    assert oac["Properties"]["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "lambda"
    permissions = {resources[name]["Properties"]["Action"] for name in
                   ("CloudFrontInvokeUrlPermission", "CloudFrontInvokePermission")}
    assert permissions == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    behavior = resources["RelayDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["Compress"] is False


def test_limits_table_and_parameters_reach_the_function(template, function):
    env = function["Environment"]["Variables"]
    assert env["LIMITS_TABLE_NAME"] == {"Ref": "LimitsTable"}
    assert env["RATE_LIMIT_REQUESTS_PER_MINUTE"] == {"Ref": "RequestsPerMinute"}
    assert env["RATE_LIMIT_CONCURRENT_STREAMS"] == {"Ref": "ConcurrentStreams"}
    limits = template["Resources"]["LimitsTable"]["Properties"]
    assert {k["AttributeName"]: k["KeyType"] for k in limits["KeySchema"]} == TABLE_KEY_SCHEMA
    assert limits["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_memory_is_a_parameter_within_lambdas_limits(template, function):
    assert function["MemorySize"] == {"Ref": "FunctionMemoryMB"}
    memory = template["Parameters"]["FunctionMemoryMB"]
    assert (memory["MinValue"], memory["MaxValue"]) == (128, 10240)  # Lambda's own bounds
    assert memory["MinValue"] <= memory["Default"] <= memory["MaxValue"]


def test_the_relays_timeouts_agree_with_the_functions_timeout(template, function):
    env = function["Environment"]["Variables"]
    timeout = function["Timeout"]
    assert float(env["FUNCTION_TIMEOUT_SECONDS"]) == timeout
    # the first token may take its whole allowance and the turn still stops in time to store the answer
    assert float(env["FIRST_TOKEN_TIMEOUT_SECONDS"]) + float(env["DEADLINE_MARGIN_SECONDS"]) < timeout
    origin = template["Resources"]["RelayDistribution"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert origin["CustomOriginConfig"]["OriginReadTimeout"] > float(env["IDLE_TIMEOUT_SECONDS"])
