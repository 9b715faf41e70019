"""Settings resolved explicit argument → environment variable → default, with every variable named in config.py."""

import ast
from pathlib import Path

import pytest

from relay import config

LIBRARY = Path(__file__).resolve().parent.parent / "layers" / "relay" / "relay"


def test_an_explicit_argument_wins_over_the_environment():
    assert config.resolve("RELAY_TEST_SETTING", "default", "argument", {"RELAY_TEST_SETTING": "environment"}) == (
        "argument")


def test_the_environment_wins_over_the_default():
    assert config.resolve("RELAY_TEST_SETTING", "default", environ={"RELAY_TEST_SETTING": "environment"}) == (
        "environment")


@pytest.mark.parametrize("environ", [{}, {"RELAY_TEST_SETTING": ""}], ids=["unset", "empty"])
def test_a_variable_unset_or_empty_means_the_default(environ):
    assert config.resolve("RELAY_TEST_SETTING", "default", environ=environ) == "default"


def test_without_a_mapping_the_process_environment_is_read(monkeypatch):
    monkeypatch.setenv("RELAY_TEST_SETTING", "from the process")
    assert config.resolve("RELAY_TEST_SETTING", "default") == "from the process"


@pytest.mark.parametrize(("environ", "expected"), [({}, False), ({"AWS_LAMBDA_FUNCTION_NAME": ""}, False),
                                                   ({"AWS_LAMBDA_FUNCTION_NAME": "ChatFunction"}, True)])
def test_only_the_lambda_runtimes_function_name_says_the_process_is_on_lambda(environ, expected):
    assert config.on_lambda(environ) is expected


def environment_reads(tree: ast.AST) -> list[str]:
    """Where a module reads the environment itself: ``os.getenv(...)``, ``<...>environ.get(...)`` or
    ``os.environ[...]`` read (a write, as tracing.py sets the trace id for the X-Ray SDK, is not a setting)."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr == "getenv" or (
                    node.func.attr == "get" and isinstance(owner, ast.Attribute | ast.Name)
                    and (owner.attr if isinstance(owner, ast.Attribute) else owner.id) in ("environ", "env")):
                reads.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and isinstance(node.value, ast.Attribute) and node.value.attr == "environ"):
            reads.append(f"line {node.lineno}: {ast.unparse(node)}")
    return reads


def test_no_module_but_config_reads_an_environment_variable():
    # GIVEN every module of the relay library but config.py
    modules = [path for path in sorted(LIBRARY.rglob("*.py")) if path.name != "config.py"]
    assert len(modules) > 20
    # THEN none reads the environment itself: names and defaults live in config.py, read through it
    reads = {str(path.relative_to(LIBRARY)): found for path in modules
             if (found := environment_reads(ast.parse(path.read_text())))}
    assert reads == {}


def test_the_check_finds_each_way_a_module_could_read_the_environment():
    source = 'os.getenv("A")\nos.environ.get("B")\nenv.get("C")\nos.environ["D"]\nos.environ["E"] = "set"\n'
    assert [read.partition(": ")[2] for read in environment_reads(ast.parse(source))] == [
        "os.getenv('A')", "os.environ.get('B')", "env.get('C')", "os.environ['D']"]
