"""template.yaml as the tests read it, and as one deployed stack of it would be.

``load_template`` reads the YAML with CloudFormation's short-form tags in their long form. ``translate`` is what
SAM hands to CloudFormation (aws-sam-translator, the library ``sam deploy`` uses, given the parameter values as
CloudFormation gives them to the transform). ``deploy`` then does what CloudFormation does with that for one set of
parameter values: it checks the values, asserts the Rules, evaluates the Conditions, drops the resources and
outputs whose condition is false, and resolves ``Fn::If``, ``Ref``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::GetAtt …Arn`` and ``AWS::NoValue`` (and, as the LanguageExtensions transform does, an
intrinsic in ``DeletionPolicy``/``UpdateReplacePolicy``). A resource's physical name is its logical id, in
account 123456789012 of us-east-1; a value only AWS knows (a function URL's address) is left unresolved.

Hand-written because no library does this offline: cfn-lint reasons about conditions without resolving values,
and moto's CloudFormation would need every resource type here supported and the code uploaded to S3.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ACCOUNT_ID", "PARTITION", "REGION", "TEMPLATE", "RuleFailed", "deploy", "load_template", "resource_arn",
           "translate"]

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
STACK_NAME = "chat-relay"
PSEUDO_PARAMETERS = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": PARTITION,
                     "AWS::StackName": STACK_NAME, "AWS::URLSuffix": "amazonaws.com"}
# What a resource's Arn reads, for the types the tests look at ({name} is its logical id).
ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role/{name}",
    "AWS::Lambda::Function": "arn:{partition}:lambda:{region}:{account}:function:{name}",
    "AWS::SecretsManager::Secret": "arn:{partition}:secretsmanager:{region}:{account}:secret:{name}",
    "AWS::S3::Bucket": "arn:{partition}:s3:::{name}",
}
REF_IS_ARN = {"AWS::SecretsManager::Secret", "AWS::IAM::ManagedPolicy", "AWS::SNS::Topic"}
_NO_VALUE = object()  # AWS::NoValue: the property or list item is removed


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as {"Ref": ...} / {"Fn::Sub": ...}."""


def _tag(loader: TemplateLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: _tag(loader, suffix, node))


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=TemplateLoader)


def resource_arn(resource_type: str, name: str) -> str:
    """The ARN of a resource of this type and physical name in the stack's account and region."""
    return ARN_FORMATS[resource_type].format(partition=PARTITION, region=REGION, account=ACCOUNT_ID, name=name)


class RuleFailed(Exception):
    """When a parameter value breaks the template's Rules or a parameter's constraints: CloudFormation refuses it."""


class _NoManagedPolicyLookups:
    """SAM looks a managed policy's ARN up in IAM only when a template names one by its short name."""

    def load(self) -> dict[str, str]:
        raise AssertionError("the template names a managed policy by its name: give its ARN (no IAM here)")


def translate(parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What SAM hands to CloudFormation for these parameter values (a copy: callers may change it)."""
    return copy.deepcopy(_translate(tuple(sorted((parameters or {}).items()))))


@cache
def _translate(parameters: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = load_template()
    for resource in template["Resources"].values():  # `sam package` uploads local code and points at S3
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://packaged/{properties[key].strip('/')}"
    # As SAM CLI builds it: the session gives the region (AWS::Region, the partition); no credentials are used.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    return translator.translate(template, parameter_values=dict(parameters),
                                get_managed_policy_map=_NoManagedPolicyLookups().load)


def deploy(template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stack CloudFormation would create from ``template`` (translated) with these parameter values."""
    stack = _Stack(template, parameters or {})
    resources = {name: resource for name, resource in template.get("Resources", {}).items()
                 if stack.holds(resource)}
    stack.resources = resources
    deployed = {name: stack.resolve(copy.deepcopy(resource)) for name, resource in resources.items()}
    outputs = {name: stack.resolve(copy.deepcopy(output)) for name, output in template.get("Outputs", {}).items()
               if stack.holds(output)}
    return {"Parameters": stack.parameters, "Resources": deployed, "Outputs": outputs}


class _Stack:
    def __init__(self, template: Mapping[str, Any], values: Mapping[str, str]) -> None:
        self.template = template
        self.conditions: dict[str, bool] = {}
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.parameters = self._parameters(values)
        self._check_rules()

    def _parameters(self, values: Mapping[str, str]) -> dict[str, Any]:
        declared = self.template.get("Parameters", {})
        unknown = set(values) - set(declared)
        if unknown:
            raise RuleFailed(f"parameters the template does not declare: {sorted(unknown)}")
        resolved: dict[str, Any] = {}
        for name, declaration in declared.items():
            if name not in values and "Default" not in declaration:
                raise RuleFailed(f"{name} has no default and no value")
            value = str(values.get(name, declaration.get("Default")))
            allowed = declaration.get("AllowedValues")
            if allowed is not None and value not in [str(choice) for choice in allowed]:
                raise RuleFailed(f"{name}={value!r} is not one of {allowed}")
            if declaration["Type"] == "Number":
                number = float(value)
                if not declaration.get("MinValue", number) <= number <= declaration.get("MaxValue", number):
                    raise RuleFailed(f"{name}={value} is out of its range")
            resolved[name] = value.split(",") if declaration["Type"] == "CommaDelimitedList" else value
        return resolved

    def _check_rules(self) -> None:
        failed = [
            assertion.get("AssertDescription", name)
            for name, rule in self.template.get("Rules", {}).items()
            if self.condition_holds(rule.get("RuleCondition", True))
            for assertion in rule["Assertions"]
            if not self.condition_holds(assertion["Assert"])
        ]
        if failed:
            raise RuleFailed("; ".join(failed))

    def holds(self, entry: Mapping[str, Any]) -> bool:
        return "Condition" not in entry or self.named_condition(entry["Condition"])

    def named_condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.condition_holds(self.template["Conditions"][name])
        return self.conditions[name]

    def condition_holds(self, expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        [(function, arguments)] = expression.items()
        if function == "Condition":
            return self.named_condition(arguments)
        if function == "Fn::Equals":
            left, right = (self.resolve(argument) for argument in arguments)
            return bool(left == right)
        if function == "Fn::Not":
            return not self.condition_holds(arguments[0])
        if function == "Fn::And":
            return all(self.condition_holds(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(self.condition_holds(argument) for argument in arguments)
        raise NotImplementedError(f"condition function {function}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, arguments)] = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._function(key, arguments)
        # every key, DeletionPolicy and UpdateReplacePolicy too (what LanguageExtensions resolves there)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _function(self, key: str, arguments: Any) -> Any:
        if key == "Fn::If":
            condition, when_true, when_false = arguments
            return self.resolve(when_true if self.named_condition(condition) else when_false)
        if key == "Ref":
            return self.ref(arguments)
        if key == "Fn::GetAtt":
            name, attribute = arguments.split(".", 1) if isinstance(arguments, str) else arguments
            return self.get_att(name, attribute)
        if key == "Fn::Sub":
            return self.sub(arguments)
        resolved = self.resolve(arguments)
        if key == "Fn::Join" and isinstance(resolved[1], list) and all(isinstance(p, str) for p in resolved[1]):
            return str(resolved[0]).join(resolved[1])
        if key == "Fn::Split" and isinstance(resolved[1], str):
            return resolved[1].split(resolved[0])
        if key == "Fn::Select" and isinstance(resolved[1], list):
            return resolved[1][int(resolved[0])]
        return {key: resolved}  # only AWS knows it

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self._resource_type(name)
        return resource_arn(kind, name) if kind in REF_IS_ARN else name

    def get_att(self, name: str, attribute: str) -> Any:
        kind = self._resource_type(name)
        if attribute == "Arn" and kind in ARN_FORMATS:
            return resource_arn(kind, name)
        return {"Fn::GetAtt": [name, attribute]}

    def _resource_type(self, name: str) -> str:
        if name not in self.resources:
            raise RuleFailed(f"{name} is referred to but is not in this stack (its condition is false, or a typo)")
        return str(self.resources[name]["Type"])

    def sub(self, arguments: Any) -> Any:
        text, variables = (arguments, {}) if isinstance(arguments, str) else arguments
        values = {name: self.resolve(value) for name, value in variables.items()}
        unresolved = False

        def variable(match: re.Match[str]) -> str:
            nonlocal unresolved
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the text ${Literal}
                return "${" + name[1:] + "}"
            if name in values:
                value = values[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            if not isinstance(value, str):
                unresolved = True
                return match.group(0)
            return value

        result = re.sub(r"\$\{([^}]+)\}", variable, text)
        return {"Fn::Sub": arguments} if unresolved else result
