"""The README in step with the code and the template, so the two cannot drift apart as the adapter's own did."""

import re
from pathlib import Path

from devtools.local_run import WEB_DIRECTORY
from devtools.page_headers import page_headers, with_sources
from relay.app import create_app
from relay.errors import REQUEST_ERROR_CODES, STREAM_ERROR_CODES
from tests.cloudformation import load_template

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_route_in_the_api_table_exists_and_every_route_is_documented():
    documented = set(re.findall(r"^\| `(GET|POST|PATCH|DELETE) (/[^`]*)`", README, flags=re.MULTILINE))
    served = {(method, route.path) for route in create_app().routes for method in route.methods or ()
              if method != "HEAD"}
    assert documented == served


def test_every_template_parameter_is_explained():
    missing = [name for name in load_template()["Parameters"] if f"`{name}`" not in README]
    assert missing == []


def test_the_quick_start_commands_are_make_targets():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    for command in re.findall(r"^make (\w[\w-]*)", README, flags=re.MULTILINE):
        assert re.search(rf"^{command}:", makefile, flags=re.MULTILINE), command
    assert "make dev" in README and "make test" in README


def test_the_streaming_settings_the_readme_names_are_the_templates():
    function = load_template()["Resources"]["ChatFunction"]["Properties"]
    assert "`AWS_LWA_INVOKE_MODE=response_stream`" in README
    assert function["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert "`InvokeMode: RESPONSE_STREAM`" in README
    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert f"Python {function['Runtime'].removeprefix('python')}" in README


def test_the_headers_the_readme_gives_a_deployer_are_the_ones_the_page_is_served_with():
    function_url = "https://<url-id>.lambda-url.<region>.on.aws"
    bucket = "https://<AttachmentsBucketName>.s3.<region>.amazonaws.com"
    index = with_sources((WEB_DIRECTORY / "index.html").read_text(), connect=[function_url, bucket], images=[bucket])
    documented = dict(re.findall(r"^(Content-Security-Policy|X-Content-Type-Options|Referrer-Policy): (.+)$", README,
                                 flags=re.MULTILINE))
    assert documented == page_headers(index)


def test_the_error_codes_the_readme_lists_are_the_ones_the_api_answers():
    refusals = re.findall(r"^\| (?:[0-9]{3}|other) \| `([a-z_]+)` \|", README, flags=re.MULTILINE)
    assert sorted(refusals) == sorted(REQUEST_ERROR_CODES)
    stream_errors = README.split("`event: error` with `{\"code\", \"message\"}`, whose code is one of:")[1]
    stream_errors = stream_errors.split("With `Accept: text/plain`")[0]
    assert sorted(set(re.findall(r"`([a-z_]+)`", stream_errors))) == sorted(STREAM_ERROR_CODES)


def test_the_layout_names_every_module_of_the_relay_library():
    library = Path(__file__).resolve().parent.parent / "layers/relay/relay"
    modules = sorted(path.stem for path in library.glob("*.py") if path.stem != "__init__")
    assert len(modules) > 20
    assert [module for module in modules if f"relay/{module}.py" not in README] == []
