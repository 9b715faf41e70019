"""The environment `sam local invoke` gives a function, worked out by SAM CLI's own code, without Docker.

    .venv-sam/bin/python -m devtools.sam_environment local invoke ChatFunction -e events/chat-stream.json \\
        --env-vars events/sam-local-env.json --parameter-overrides AuthMode=none AllowUnauthenticated=true \\
        --region us-east-1

prints, as one JSON object, the variables the function's container would get. It runs in `.venv-sam` (`make
sam-cli`), where SAM CLI lives apart from `.venv` because it pins its own boto3. It calls SAM CLI itself rather than
re-implementing it, so that SAM CLI's rules cannot drift from a copy of them unnoticed; installing it costs ~30-45 s
here, once. The command line is parsed by the `sam local invoke` command (its option types, `samconfig.toml` and
the default template included); the template is resolved by its stack provider with the parameter overrides and the
region (template defaults; a `!Ref` to a resource that cannot exist locally becomes its logical id, an intrinsic it
cannot resolve becomes empty); and `LocalLambdaRunner._make_env_vars` merges the template's variables with the
shell's values and the `--env-vars` file (only for variables the template declares: others are dropped), and adds
the `AWS_*` variables SAM CLI sets itself (credentials from the shell's AWS configuration). Left out: asking STS for
the account id (the function's environment does not use it) and everything Docker does. Two of those calls are
SAM CLI's private methods: requirements-sam.txt pins the version they were read in.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SUPPORTED_COMMAND = ["local", "invoke"]


def resolve(sam_arguments: list[str]) -> dict[str, str]:
    """The environment of the function that ``sam <sam_arguments>`` (a ``local invoke`` command line) would run."""
    from samcli.cli.context import Context
    from samcli.commands.local.cli_common.invoke_context import InvokeContext
    from samcli.commands.local.invoke.cli import cli as local_invoke
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    if sam_arguments[:2] != SUPPORTED_COMMAND:
        raise SystemExit(f"expected a `sam {' '.join(SUPPORTED_COMMAND)} ...` command line, got {sam_arguments!r}")
    command = local_invoke.make_context("invoke", sam_arguments[2:])
    options: dict[str, Any] = command.params
    region = command.find_object(Context).region  # --region is handled by SAM CLI's context, not a parameter
    profile = command.find_object(Context).profile
    stacks, _ = SamLocalStackProvider.get_stacks(
        options["template_file"],
        parameter_overrides=options["parameter_overrides"],
        global_parameter_overrides={"AWS::Region": region} if region else None,
    )
    functions = SamFunctionProvider(stacks)
    function = functions.get(options["function_logical_id"])
    if function is None:
        raise SystemExit(f"no function {options['function_logical_id']!r} in {options['template_file']}")
    template_directory = os.path.dirname(options["template_file"])
    runner = LocalLambdaRunner(
        None, functions, cwd=template_directory, real_path=template_directory, aws_profile=profile, aws_region=region,
        env_vars_values=InvokeContext._get_env_vars_value(options["env_vars"]),
    )
    environment: dict[str, str] = runner._make_env_vars(function).resolve()
    return environment


def main(argv: list[str] | None = None) -> int:
    json.dump(resolve(sys.argv[1:] if argv is None else argv), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
