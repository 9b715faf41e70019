# The README's quick start: `make dev` runs the relay locally, `make test` runs every check.
PYTHON_VERSION := 3.12
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
export PYTHONPATH := layers/relay:functions/chat:.

# The Lambda runtime is python3.12: use the same minor version locally (also what `sam build` needs).
BASE_PYTHON ?= $(shell for p in python$(PYTHON_VERSION) $$HOME/.pyenv/versions/$(PYTHON_VERSION).*/bin/python$(PYTHON_VERSION) /usr/local/bin/python$(PYTHON_VERSION); do $$p -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)

.PHONY: dev test lint unit invoke smoke report bench bench-smoke load load-smoke sam-cli build vendor screenshot openapi clean

$(VENV)/.installed: requirements-dev.txt layers/relay/requirements.txt
	@test -n "$(BASE_PYTHON)" || { echo "Python $(PYTHON_VERSION) is needed (the Lambda runtime is python$(PYTHON_VERSION))"; exit 1; }
	@test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# SAM CLI pins its own boto3, so it lives in a virtual environment of its own (~30-45 s to install, once).
$(SAM_VENV)/.installed: requirements-sam.txt
	@test -n "$(BASE_PYTHON)" || { echo "Python $(PYTHON_VERSION) is needed (the Lambda runtime is python$(PYTHON_VERSION))"; exit 1; }
	@test -x $(SAM_VENV)/bin/python || $(BASE_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	@touch $@

sam-cli: $(SAM_VENV)/.installed

# The AI SDK (the tests read the relay's UI message stream with it) and the page's libraries, pinned in package.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# One line per turn in the terminal; the JSON logs and EMF in .local/dev.log (VERBOSE=1: in the terminal too).
dev: $(VENV)/.installed
	@$(PY) -m devtools.local_run $(if $(filter-out 0,$(VERBOSE)),--verbose)

test: lint unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

# SAM CLI too: a test resolves `sam local invoke`'s environment with it.
unit: $(VENV)/.installed node_modules/.installed $(SAM_VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The response on stdout, the local stack's logs on stderr (so no echo of the command either).
EVENT ?= events/chat-stream.json
invoke: $(VENV)/.installed
	@$(PY) -m devtools.invoke $(EVENT) $(if $(URL),--url $(URL))

# A relay checked end to end as a user meets it: make smoke URL=https://<id>.lambda-url.<region>.on.aws [TOKEN=...]
# (TOKEN reaches the script through the environment, so it is not echoed with the command).
smoke: $(VENV)/.installed
	@test -n "$(URL)" || { echo "usage: make smoke URL=https://<id>.lambda-url.<region>.on.aws [TOKEN=...] [PROVIDER=... MODEL=...]"; exit 2; }
	$(PY) -m devtools.smoke $(URL) $(if $(PROVIDER),--provider '$(PROVIDER)') $(if $(MODEL),--model '$(MODEL)') $(if $(TOKEN_HEADER),--token-header $(TOKEN_HEADER))

# Percentiles per provider and model, errors by code, and a chart, from the local run's log (or LOG=file).
report: $(VENV)/.installed
	$(PY) -m devtools.report $(or $(LOG),.local/dev.log)

# Relay-added latency, throughput, cold start, memory and DynamoDB requests, side by side with their references.
bench: $(VENV)/.installed
	$(PY) -m devtools.bench

bench-smoke: $(VENV)/.installed
	$(PY) -m devtools.bench --smoke

# 100 streams at once for about 60 s on loopback; fails on any lost or stuck message, never on a timing.
load: $(VENV)/.installed
	$(PY) -m devtools.load

load-smoke: $(VENV)/.installed
	$(PY) -m devtools.load --streams 5 --seconds 5

build: $(SAM_VENV)/.installed
	PATH="$$(dirname $(BASE_PYTHON)):$$PATH" $(SAM_VENV)/bin/sam build

# The OpenAPI document and the request validators' schemas, from relay/api.py (tests/test_api.py keeps them equal).
openapi: $(VENV)/.installed
	$(PY) -m relay.openapi

# Copies the page's markdown renderer, sanitiser and code highlighter (highlight.js's ES module with its common
# languages, and its two accessible themes), with their licenses, from the versions package.json pins.
HIGHLIGHT := node_modules/@highlightjs/cdn-assets
vendor: node_modules/.installed
	sed '/^\/\/# sourceMappingURL/d' node_modules/marked/lib/marked.esm.js > web/vendor/marked.esm.js
	sed '/^\/\/# sourceMappingURL/d' node_modules/dompurify/dist/purify.es.mjs > web/vendor/purify.es.js
	sed '/^\/\/# sourceMappingURL/d' $(HIGHLIGHT)/es/highlight.min.js > web/vendor/highlight.min.js
	cp $(HIGHLIGHT)/styles/a11y-light.css web/vendor/highlight-light.css
	cp $(HIGHLIGHT)/styles/a11y-dark.css web/vendor/highlight-dark.css
	cp node_modules/marked/LICENSE web/vendor/marked.LICENSE
	cp node_modules/dompurify/LICENSE web/vendor/dompurify.LICENSE
	cp $(HIGHLIGHT)/LICENSE web/vendor/highlight.LICENSE

# The README's picture of the chat page (web/screenshot.png), taken in Chromium from the local stack.
screenshot: $(VENV)/.installed
	$(PY) -m devtools.screenshot

clean:
	rm -rf node_modules $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .ruff_cache
