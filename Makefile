# clinicpay: `make run` serves everything locally, `make test` runs every test. `make help` lists the rest.

# The interpreter the venvs are made with: python3.11 or python3.12, whichever is on PATH (or PYTHON=...).
PYTHON      ?= $(firstword $(foreach p,python3.11 python3.12,$(shell command -v $(p) 2>/dev/null)))
NO_PYTHON   := clinicpay needs Python 3.11 or 3.12 to make its venvs. Install one (Debian/Ubuntu: apt-get install python3.11-venv or python3.12-venv; or pyenv), \
               or name one: make PYTHON=/path/to/python3.12 ...
VENV        := .venv
PY          := $(VENV)/bin/python
SAM_VENV    := .venv-sam
SAM         := $(SAM_VENV)/bin/sam
PYTEST_ARGS ?=
# Functions run python3.13 on arm64 (template.yaml); pyenv has to expose every interpreter sam may look for.
SAM_ENV     := PYENV_VERSION=3.11.7:3.12.1:3.13.0 SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The venvs are (re)installed only when their requirements change: the stamp name holds their hash.
VENV_STAMP  := $(VENV)/.installed-$(shell cat requirements/runtime.txt requirements/dev.txt | sha256sum | cut -c1-16)
SAM_STAMP   := $(SAM_VENV)/.installed-$(shell cat requirements/sam.txt | sha256sum | cut -c1-16)
FUZZ_VENV   := .venv-fuzz
FUZZ_STAMP  := $(FUZZ_VENV)/.installed-$(shell cat requirements/fuzz.txt | sha256sum | cut -c1-16)
# `make fuzz` explores longer than CI, which runs `make fuzz FUZZ_ARGS="--max-examples 10"` (.ci/run).
FUZZ_ARGS   ?= --max-examples 40

.DEFAULT_GOAL := help
.PHONY: help venv vendor check-python run test test-unit test-integration test-e2e chromium lint sam-venv sam-validate sam-build \
        bench openapi events clean fuzz fuzz-venv

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV_STAMP) ## create .venv (python3.11 or 3.12) with requirements/dev.txt

check-python: ## say clearly when neither python3.11 nor python3.12 is there (before a venv is made with it)
	@test -n "$(PYTHON)" && command -v "$(PYTHON)" >/dev/null 2>&1 || \
	  { echo "No $(or $(PYTHON),python3.11 or python3.12) on PATH. $(NO_PYTHON)" >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' || \
	  { echo "$(PYTHON) is Python $$("$(PYTHON)" -c 'import platform; print(platform.python_version())'); $(NO_PYTHON)" >&2; exit 1; }

$(VENV_STAMP): requirements/runtime.txt requirements/dev.txt
	@test -x $(PY) || $(MAKE) --no-print-directory check-python PYTHON="$(PYTHON)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements/dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

run: venv ## serve API, sandboxes, web pages and /_local tools on 127.0.0.1:PORT (default 3000) with demo clinics
	@$(call VENDOR_OR_SAY,/docs cannot render its viewer; everything else works)
	$(PY) -m local.stack

vendor: venv ## fetch the /docs viewer and axe-core (each pinned with its SRI hash) from npm into build/vendor
	$(PY) -m local.vendor

# `make vendor` where npm answers; where it does not, say what is missing and go on (those tests skip, saying why).
VENDOR_OR_SAY = $(PY) -m local.vendor || echo "make vendor failed (npm missing or offline): $(1)" >&2

test: venv chromium ## every test: unit, integration (moto), e2e (local stack, browser)
	@$(call VENDOR_OR_SAY,the /docs and axe-core browser tests will skip)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no AWS, no network)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: venv ## handlers in-process against moto
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: venv chromium ## the local stack over HTTP and in the browser
	@$(call VENDOR_OR_SAY,the /docs and axe-core browser tests will skip)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

chromium: ## Debian chromium for the browser tests (never `playwright install`: its CDN is unreachable)
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

lint: venv ## ruff check; mypy on the shared layer and the functions; the OpenAPI document is current
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy layers/shared/python functions local ops
	POWERTOOLS_TRACE_DISABLED=true AWS_DEFAULT_REGION=us-east-1 $(PY) -m local.openapi --check

sam-venv: $(SAM_STAMP) ## create .venv-sam with aws-sam-cli (its own venv: it pins boto3/pydantic)

$(SAM_STAMP): requirements/sam.txt
	@test -x $(SAM_VENV)/bin/python || $(MAKE) --no-print-directory check-python PYTHON="$(PYTHON)"
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements/sam.txt
	rm -f $(SAM_VENV)/.installed-*
	touch $@

sam-validate: sam-venv ## sam validate --lint (cfn-lint; offline)
	$(SAM_ENV) $(SAM) validate --lint

sam-build: sam-venv ## sam build without containers (needs PyPI)
	$(SAM_ENV) $(SAM) build

fuzz-venv: $(FUZZ_STAMP) ## create .venv-fuzz with schemathesis (its own venv: hypothesis and its pins stay out of .venv)

$(FUZZ_STAMP): requirements/fuzz.txt
	@test -x $(FUZZ_VENV)/bin/python || $(MAKE) --no-print-directory check-python PYTHON="$(PYTHON)"
	test -x $(FUZZ_VENV)/bin/python || $(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements/fuzz.txt
	rm -f $(FUZZ_VENV)/.installed-*
	touch $@

fuzz: venv fuzz-venv ## schemathesis on /openapi.json of a local stack, with no key and each kind of key (FUZZ_ARGS=...)
	POWERTOOLS_TRACE_DISABLED=true AWS_DEFAULT_REGION=us-east-1 $(PY) -m tests.fuzz.run $(FUZZ_ARGS)

bench: venv ## run every bench/*.py
	@for script in bench/*.py; do \
	  [ -e "$$script" ] || { echo "no benchmarks in bench/"; break; }; \
	  echo "== $$script"; PYTHONPATH=layers/shared/python:. $(PY) "$$script" || exit 1; \
	done

openapi: venv ## regenerate the OpenAPI document GET /openapi.json serves, from every function's routes
	POWERTOOLS_TRACE_DISABLED=true AWS_DEFAULT_REGION=us-east-1 $(PY) -m local.openapi

events: venv ## regenerate events/ from template.yaml
	$(PY) -m local.make_events

clean: ## remove build output and caches (keeps the venvs)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache schemathesis-report .hypothesis
