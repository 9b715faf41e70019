"""What cfn-lint cannot see: the template as SAM translates it and CloudFormation deploys it, for each supported
combination of parameters, its permissions against the AWS calls the code makes, and the template in step with
the code."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.local_run import LOCAL_ENVIRONMENT
from relay.store import (
    SESSION_INDEX,
    SESSION_INDEX_ATTRIBUTES,
    SESSION_INDEX_KEY_SCHEMA,
    TABLE_KEY_SCHEMA,
    TTL_ATTRIBUTE,
)
from tests.aws_calls import evidence_is_complete, recorder
from tests.cloudformation import (
    ACCOUNT_ID,
    PARTITION,
    REGION,
    RuleFailed,
    deploy,
    load_template,
    resource_arn,
    translate,
)
from tests.iam import Permission, allows, bedrock_model_arn, grants, needed_permissions

ROOT = Path(__file__).resolve().parent.parent

AUTH_MODES = {
    "jwt": {"AuthMode": "jwt", "JwtIssuer": "https://issuer.example.com"},
    "jwt-cognito": {"CognitoUserPoolId": "us-east-1_Example", "CognitoClientId": "example-client"},
    "none": {"AuthMode": "none", "AllowUnauthenticated": "true"},
    "iam": {"AuthMode": "iam"},
    "iam-cloudfront": {"AuthMode": "iam", "CreateCloudFront": "true", "JwtIssuer": "https://issuer.example.com"},
}
TRACING = {"tracing-off": {}, "tracing-on": {"EnableTracing": "true"}}
BEDROCK = {"bedrock-off": {}, "bedrock-on": {
    "BedrockModels": "anthropic.claude-3-5-haiku-20241022-v1:0,us.anthropic.claude-sonnet-4-20250514-v1:0"}}
# Every supported combination: each way to authenticate, with tracing and Bedrock on and off.
COMBINATIONS = {
    "-".join(names): {**AUTH_MODES[names[0]], **TRACING[names[1]], **BEDROCK[names[2]]}
    for names in itertools.product(AUTH_MODES, TRACING, BEDROCK)
}
PUBLIC_AUTH_MODES = ("jwt", "jwt-cognito", "none")
LAMBDA_LOGS_POLICY = f"arn:{PARTITION}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
# What Lambda itself sends with the function's role when the function is actively traced.
TRACING_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def deployed(name: str) -> dict[str, Any]:
    parameters = COMBINATIONS[name]
    return deploy(translate(parameters), parameters)


def of_type(stack: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource["Properties"] for name, resource in stack["Resources"].items()
            if resource["Type"] == resource_type}


def function_of(stack: Mapping[str, Any]) -> dict[str, Any]:
    [function] = of_type(stack, "AWS::Lambda::Function").values()
    return function


def environment_of(stack: Mapping[str, Any]) -> dict[str, Any]:
    return dict(function_of(stack)["Environment"]["Variables"])


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def function(template) -> dict[str, Any]:
    return template["Resources"]["ChatFunction"]["Properties"]


# The function URL and who may call it, as deployed.

@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_url_streams_and_its_auth_type_follows_the_auth_mode(combination):
    # GIVEN the stack deployed with this combination
    stack = deployed(combination)
    # THEN its one URL streams, public unless AuthMode is iam
    [url] = of_type(stack, "AWS::Lambda::Url").values()
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert url["AuthType"] == ("NONE" if combination.startswith(PUBLIC_AUTH_MODES) else "AWS_IAM")
    assert url["TargetFunctionArn"] == "ChatFunction"


@pytest.mark.parametrize("combination", [name for name in COMBINATIONS if name.startswith(PUBLIC_AUTH_MODES)])
def test_a_public_url_lets_anyone_invoke_it_through_the_url_only(combination):
    # GIVEN a public URL (jwt or none)
    permissions = of_type(deployed(combination), "AWS::Lambda::Permission")
    # THEN anyone may call the URL, and invoke the function only by way of the URL: since October 2025 a new URL
    # needs both, and SAM adds neither for a conditional AuthType
    assert sorted(permissions.values(), key=lambda permission: permission["Action"]) == [
        {"FunctionName": "ChatFunction", "Action": "lambda:InvokeFunction", "Principal": "*",
         "InvokedViaFunctionUrl": True},
        {"FunctionName": "ChatFunction", "Action": "lambda:InvokeFunctionUrl", "Principal": "*",
         "FunctionUrlAuthType": "NONE"},
    ]


@pytest.mark.parametrize("combination", [name for name in COMBINATIONS if name.startswith("iam")])
def test_an_iam_url_is_invoked_by_nobody_but_its_own_cloudfront_distribution(combination):
    # GIVEN an AWS_IAM URL, with or without CloudFront
    stack = deployed(combination)
    permissions = of_type(stack, "AWS::Lambda::Permission")
    # THEN nothing is public, and only the stack's distribution is let in, for both actions
    assert all(permission["Principal"] != "*" for permission in permissions.values())
    if "cloudfront" not in combination:
        assert permissions == {}
        return
    distribution = f"arn:{PARTITION}:cloudfront::{ACCOUNT_ID}:distribution/RelayDistribution"
    assert "RelayDistribution" in stack["Resources"]
    assert sorted((p["Action"], p["Principal"], p["SourceArn"]) for p in permissions.values()) == [
        ("lambda:InvokeFunction", "cloudfront.amazonaws.com", distribution),
        ("lambda:InvokeFunctionUrl", "cloudfront.amazonaws.com", distribution),
    ]


@pytest.mark.parametrize(("parameters", "refusal"), [
    ({"AuthMode": "none"}, "AllowUnauthenticated"),
    ({"AuthMode": "jwt"}, "CognitoUserPoolId or JwtIssuer"),
    ({}, "CognitoUserPoolId or JwtIssuer"),  # the defaults alone: jwt with no issuer
    ({"AuthMode": "open", "JwtIssuer": "https://issuer.example.com"}, "not one of"),
    # CloudFront signs every viewer's request alike: with no issuer to check a user token, everyone on the internet
    # would be one user of a public relay, as with none.
    ({"AuthMode": "iam", "CreateCloudFront": "true"}, "CognitoUserPoolId or JwtIssuer.*AllowUnauthenticated"),
])
def test_a_forbidden_combination_is_refused(parameters, refusal):
    with pytest.raises(RuleFailed, match=refusal):
        deploy(translate(parameters), parameters)


@pytest.mark.parametrize("parameters", [
    {"AuthMode": "iam"},  # no CloudFront: only IAM principals the account allows can sign, server to server
    {"AuthMode": "iam", "CreateCloudFront": "true", "CognitoUserPoolId": "us-east-1_Example"},
    {"AuthMode": "iam", "CreateCloudFront": "true", "AllowUnauthenticated": "true"},  # public on purpose
])
def test_iam_mode_is_public_through_cloudfront_only_with_an_issuer_or_consent(parameters):
    assert deploy(translate(parameters), parameters)["Resources"]


# The function as deployed.

@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_function_runs_behind_the_web_adapter_in_response_stream_mode(combination):
    function = function_of(deployed(combination))
    env = function["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"  # anything else silently buffers the whole answer
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz" and env["PORT"] == "8000"
    adapter, relay_layer = function["Layers"]
    assert adapter.startswith(f"arn:aws:lambda:{REGION}:753240598075:layer:LambdaAdapterLayerArm64:")
    assert function["Architectures"] == ["arm64"]
    assert relay_layer.startswith("RelayLayer")  # SAM's hashed name for the relay's own layer version


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_app_starts_with_the_environment_the_stack_gives_it(combination):
    from relay.auth import authenticator_from_environment
    from relay.config import Settings

    # GIVEN the function's environment, every value resolved from a parameter, a resource or the template itself
    parameters = COMBINATIONS[combination]
    env = environment_of(deployed(combination))
    assert all(isinstance(value, str) for value in env.values()), env
    # WHEN the app reads it at start, as on Lambda
    settings = Settings.from_environment({**env, "AWS_LAMBDA_FUNCTION_NAME": "ChatFunction"})
    http = httpx.AsyncClient()
    authenticator = authenticator_from_environment(http, {**env, "AWS_LAMBDA_FUNCTION_NAME": "ChatFunction"})
    asyncio.run(http.aclose())
    # THEN it accepts it, and finds the stack's tables, secret, models and authentication in it
    assert settings.table_name == "ChatTable" and settings.limits_table_name == "LimitsTable"
    assert settings.provider_keys_secret_arn == resource_arn("AWS::SecretsManager::Secret", "ProviderKeys")
    assert settings.models["bedrock"] == [model for model in parameters.get("BedrockModels", "").split(",") if model]
    expected = {"jwt": "JwtAuthenticator", "none": "NoAuthentication",
                "iam": "JwtAuthenticator" if env["JWT_ISSUER"] else "IamAuthentication"}
    assert type(authenticator).__name__ == expected[env["AUTH_MODE"]]
    if "CognitoUserPoolId" in parameters:
        assert env["JWT_ISSUER"] == f"https://cognito-idp.{REGION}.amazonaws.com/{parameters['CognitoUserPoolId']}"


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_one_parameter_switches_both_xray_and_the_apps_tracer(combination):
    function = function_of(deployed(combination))
    tracing = "tracing-on" in combination
    assert function["TracingConfig"] == {"Mode": "Active" if tracing else "PassThrough"}
    assert function["Environment"]["Variables"]["TRACING_ENABLED"] == str(tracing).lower()


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_role_grants_xray_only_with_tracing_and_bedrock_only_with_models(combination):
    # Checked on the deployed role alone, so it holds even when the suite runs in part.
    [role] = [resource for resource in deployed(combination)["Resources"].values()
              if resource["Type"] == "AWS::IAM::Role"]
    actions = {action for action, _ in grants(role)}
    assert ({action for action in actions if action.startswith("xray:")}
            == (TRACING_ACTIONS if "tracing-on" in combination else set()))
    assert ({action for action in actions if action.startswith("bedrock:")}
            == ({"bedrock:InvokeModelWithResponseStream"} if "bedrock-on" in combination else set()))
    assert role["Properties"]["ManagedPolicyArns"] == [LAMBDA_LOGS_POLICY]  # Lambda writes the logs, not the code


def test_the_chat_table_survives_a_stack_deletion_or_replacement_by_default():
    stack = deployed("jwt-tracing-off-bedrock-off")
    table = stack["Resources"]["ChatTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert table["Properties"]["DeletionProtectionEnabled"] is True


def test_a_throwaway_stack_opts_out_and_its_chat_table_goes_with_it():
    parameters = {**COMBINATIONS["jwt-tracing-off-bedrock-off"], "RetainChatTable": "false"}
    table = deploy(translate(parameters), parameters)["Resources"]["ChatTable"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert table["Properties"]["DeletionProtectionEnabled"] is False


@pytest.mark.parametrize("retained", ["true", "false"])
def test_the_attachments_bucket_is_private_encrypted_and_kept_or_removed_with_the_chat_table(retained):
    # GIVEN the stack, with the chat data retained (the default) or not
    parameters = {**COMBINATIONS["jwt-tracing-off-bedrock-off"], "RetainChatTable": retained,
                  "AllowedOrigins": "https://chat.example.com,http://localhost:3000", "MessageTtlDays": "45"}
    resources = deploy(translate(parameters), parameters)["Resources"]
    bucket, table = resources["AttachmentsBucket"], resources["ChatTable"]
    properties = bucket["Properties"]
    # THEN it goes, or stays, with the conversations whose images it holds
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == (table["DeletionPolicy"],
                                                                         table["UpdateReplacePolicy"])
    # AND nothing in it is public, every object is encrypted at rest, and no ACL grants anything
    assert properties["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                            "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # AND only the page's origins may PUT to it from a browser, and only that
    [cors] = properties["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == ["https://chat.example.com", "http://localhost:3000"]
    assert (cors["AllowedMethods"], cors["AllowedHeaders"]) == (["PUT"], ["content-type"])
    # AND an image expires as its messages do
    [rule] = properties["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"], "Prefix" in rule, "Filter" in rule) == ("Enabled", "45", False,
                                                                                            False)
    # AND a request that is not TLS is refused, whoever makes it
    [policy] = [resource["Properties"] for resource in resources.values()
                if resource["Type"] == "AWS::S3::BucketPolicy"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": False}}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_role_reaches_the_attachments_bucket_and_nothing_else_in_s3(combination):
    # Checked on the deployed role alone, so it holds even when the suite runs in part.
    stack = deployed(combination)
    bucket = resource_arn("AWS::S3::Bucket", "AttachmentsBucket")
    s3_grants = {(action, resource) for action, resource in grants(stack["Resources"]["ChatFunctionRole"])
                 if action.startswith("s3:")}
    assert s3_grants == {("s3:PutObject", f"{bucket}/*"), ("s3:GetObject", f"{bucket}/*"),
                         ("s3:DeleteObject", f"{bucket}/*"), ("s3:ListBucket", bucket)}
    assert environment_of(stack)["ATTACHMENTS_BUCKET"] == "AttachmentsBucket"


def test_the_local_bucket_lets_the_page_upload_as_the_templates_does(template, stack):
    from devtools.local_run import ATTACHMENTS_BUCKET

    # GIVEN the bucket the local run and the tests use, as S3 describes it
    [local] = stack.s3_client().get_bucket_cors(Bucket=ATTACHMENTS_BUCKET)["CORSRules"]
    [declared] = template["Resources"]["AttachmentsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    # THEN the same methods, headers and preflight lifetime (the origins are each one's own)
    assert (local["AllowedMethods"], local["AllowedHeaders"], local["MaxAgeSeconds"]) == (
        declared["AllowedMethods"], declared["AllowedHeaders"], declared["MaxAge"])
    assert stack.url in local["AllowedOrigins"]


def test_the_url_is_an_output():
    outputs = deployed("jwt-tracing-off-bedrock-off")["Outputs"]
    assert outputs["ChatFunctionUrl"]["Value"] == {"Fn::GetAtt": ["ChatFunctionUrl", "FunctionUrl"]}
    assert "CloudFrontUrl" not in outputs
    assert "CloudFrontUrl" in deployed("iam-cloudfront-tracing-off-bedrock-off")["Outputs"]


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_cors_allowlist_is_one_list_for_the_url_and_the_app_without_wildcard_or_credentials(combination):
    from relay.app import CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS, create_app

    stack = deployed(combination)
    [url] = of_type(stack, "AWS::Lambda::Url").values()
    cors = url["Cors"]
    assert ",".join(cors["AllowOrigins"]) == environment_of(stack)["CORS_ALLOW_ORIGINS"] == "http://localhost:3000"
    assert cors["AllowCredentials"] is False
    assert set(cors["AllowHeaders"]) == set(CORS_ALLOW_HEADERS)
    assert set(cors["ExposeHeaders"]) == set(CORS_EXPOSE_HEADERS) == {"retry-after"}
    # every method a route answers may come from a page (PATCH and DELETE need a preflight)
    served = {method for route in create_app().routes for method in route.methods or ()} - {"HEAD"}
    assert set(cors["AllowMethods"]) == set(CORS_ALLOW_METHODS) == served


# Least privilege, from evidence: the AWS calls the code made while the rest of the suite ran (tests/aws_calls.py).

def deployed_arn(stack: Mapping[str, Any], kind: str, name: str) -> str:
    """The deployed ARN of what the test run named: its tables and bucket by the local run's names, read through the
    same variables the stack sets; any secret stands for the one PROVIDER_KEYS_SECRET_ARN names."""
    env = environment_of(stack)
    if kind == "bucket":
        assert name == LOCAL_ENVIRONMENT["ATTACHMENTS_BUCKET"], f"the code used a bucket the check cannot place: {name}"
        return resource_arn("AWS::S3::Bucket", env["ATTACHMENTS_BUCKET"])
    if kind == "table":
        table, _, index = name.partition("/index/")
        variables = {LOCAL_ENVIRONMENT[variable]: variable for variable in ("TABLE_NAME", "LIMITS_TABLE_NAME")}
        variable = variables.get(table.partition(".")[0])  # "<local name>.<tests' own>": the same table deployed
        assert variable, f"the code used a table the check cannot place in the template: {table}"
        arn = resource_arn("AWS::DynamoDB::Table", env[variable])
        return f"{arn}/index/{index}" if index else arn
    if kind == "secret":
        return str(env["PROVIDER_KEYS_SECRET_ARN"])
    return bedrock_model_arn(name, partition=PARTITION, region=REGION, account=ACCOUNT_ID)


def needed_by_the_code(stack: Mapping[str, Any]) -> set[Permission]:
    """What the recorded calls need in this stack; Bedrock's only where it is offered (BedrockModels is set)."""
    bedrock_offered = bool(environment_of(stack)["BEDROCK_MODELS"])
    return {permission for call in recorder.calls if bedrock_offered or call.service != "bedrock-runtime"
            for permission in needed_permissions(call, lambda kind, name: deployed_arn(stack, kind, name))}


@pytest.fixture()
def evidence(request) -> None:
    if not evidence_is_complete(request.session):
        pytest.skip(f"needs the whole suite's AWS calls (make test); {len(recorder.calls)} recorded in this run")
    assert {call.service for call in recorder.calls} >= {"dynamodb", "secretsmanager", "bedrock-runtime", "s3"}


@pytest.mark.runs_last
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_role_allows_every_aws_call_the_code_made_on_the_resource_it_named(evidence, combination):
    # GIVEN the stack's role, and every call the code made in the suite
    stack = deployed(combination)
    role = stack["Resources"]["ChatFunctionRole"]
    # THEN each call's action is allowed on the resource the call named, in this stack
    refused = sorted(permission for permission in needed_by_the_code(stack) if not allows(role, permission))
    assert refused == []


@pytest.mark.runs_last
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_role_grants_nothing_the_code_never_calls(evidence, combination):
    # GIVEN the stack's role and what the code's calls needed
    stack = deployed(combination)
    role = stack["Resources"]["ChatFunctionRole"]
    needed = needed_by_the_code(stack)
    platform = TRACING_ACTIONS if "tracing-on" in combination else set()
    # THEN every action granted was needed (or is Lambda's own, for tracing) ...
    unused_actions = {action for action, _ in grants(role)} - {action for action, _ in needed} - platform
    assert unused_actions == set()
    # ... and every grant on one of the stack's resources (a table, the secret) was used on that resource
    unused = [(action, resource) for action, resource in grants(role) if "*" not in resource
              and not any(allows(_only(action, resource), permission) for permission in needed)]
    assert unused == []


def _only(action: str, resource: str) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return {"Properties": {"Policies": [{"PolicyDocument": {"Statement": [statement]}}]}}


# The template in step with the code (read as written).

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
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == SESSION_INDEX
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == SESSION_INDEX_KEY_SCHEMA
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(SESSION_INDEX_ATTRIBUTES)}
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == {
        name: "S" for name in {**TABLE_KEY_SCHEMA, **SESSION_INDEX_KEY_SCHEMA}}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_local_chat_table_is_the_templates(template, dynamodb):
    from devtools.local_run import TABLE_NAME

    # GIVEN the table the local run and the tests use (devtools/servers.py), as DynamoDB describes it
    local = dynamodb.describe_table(TableName=TABLE_NAME)["Table"]
    table = template["Resources"]["ChatTable"]["Properties"]
    # THEN its keys, attribute types and index are the template's
    assert local["KeySchema"] == table["KeySchema"]
    assert sorted(local["AttributeDefinitions"], key=str) == sorted(table["AttributeDefinitions"], key=str)
    [index] = local["GlobalSecondaryIndexes"]
    [declared] = table["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"], index["Projection"]) == (
        declared["IndexName"], declared["KeySchema"], declared["Projection"])


def test_powertools_environment_matches_the_metrics_the_dashboard_reads(template, function):
    env = function["Environment"]["Variables"]
    body = str(template["Resources"]["RelayDashboard"]["Properties"]["DashboardBody"])
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    assert f'"{namespace}", "TimeToFirstToken", "service", "{service}"' in body


def test_every_environment_variable_the_template_sets_is_one_something_reads(function):
    # A misspelt variable is silently ignored: each must be read by the relay, the adapter or Powertools.
    library = "".join(path.read_text() for path in (ROOT / "layers/relay/relay").rglob("*.py"))
    read_elsewhere = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "AWS_LWA_READINESS_CHECK_PATH", "PORT",
                      "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "AWS_ENDPOINT_URL_DYNAMODB",
                      "AWS_ENDPOINT_URL_S3"}
    for name in function["Environment"]["Variables"]:
        assert name in read_elsewhere or f'"{name}"' in library or name.endswith("_MODELS"), name


def test_provider_keys_secret_names_each_keyed_provider_by_its_sdk_variable(template):
    # That the registry reads each of these fields: tests/test_provider_keys.py.
    keys = json.loads(template["Resources"]["ProviderKeys"]["Properties"]["SecretString"])
    assert set(keys) == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"}


def test_cloudfront_never_compresses_the_stream(template):
    behavior = template["Resources"]["RelayDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["Compress"] is False
    oac = template["Resources"]["RelayOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert oac["OriginAccessControlOriginType"] == "lambda" and oac["SigningBehavior"] == "always"


def test_limits_table_matches_the_store_and_its_parameters_reach_the_function(template, function):
    env = function["Environment"]["Variables"]
    assert env["RATE_LIMIT_REQUESTS_PER_MINUTE"] == {"Ref": "RequestsPerMinute"}
    assert env["RATE_LIMIT_CONCURRENT_STREAMS"] == {"Ref": "ConcurrentStreams"}
    assert env["TOKEN_BUDGET_PER_DAY"] == {"Ref": "TokenBudgetPerDay"}
    assert env["TOKEN_BUDGET_PER_MONTH"] == {"Ref": "TokenBudgetPerMonth"}
    for budget in ("TokenBudgetPerDay", "TokenBudgetPerMonth"):  # 0, the default, is off
        assert (template["Parameters"][budget]["Default"], template["Parameters"][budget]["MinValue"]) == (0, 0)
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
