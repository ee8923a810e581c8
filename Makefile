# The two commands: `make run` and `make test`. Both install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The installer: uv (from PyPI), pinned; it installs the pinned set in seconds.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
# What serving needs (the app and the embedded database), then everything (tests, linters).
SERVE_STAMP := $(VENV)/.installed-serve
STAMP := $(VENV)/.installed

# dynalite (npm, pinned by tests/dynalite/package-lock.json; Node >= 20): a second DynamoDB
# implementation. In memory; its LevelDB module ships prebuilt binaries, so no install script runs.
DYNALITE_DIR := tests/dynalite
DYNALITE_STAMP := $(DYNALITE_DIR)/node_modules/.installed
DYNALITE_SUITES := tests/common/data tests/features/passengers tests/concurrency

# openapi-typescript, openapi-fetch and typescript (npm, pinned by tests/clients/node/package-lock.json):
# tests/clients generates a TypeScript client from /openapi.json and compiles it with tsc --strict.
CLIENTS_NODE_DIR := tests/clients/node
CLIENTS_NODE_STAMP := $(CLIENTS_NODE_DIR)/node_modules/.installed

.PHONY: help install run dev reset test lint format bench worker seed container-smoke clean

help:  ## this list (the two commands: make run, make test)
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@echo "make: creating $(VENV) and installing uv $(UV_VERSION), the installer"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SERVE_STAMP): pyproject.toml constraints.txt | $(UV)
	@echo "make: installing what serving needs (the app, the embedded database) into $(VENV)"
	$(UV) pip install --python $(PY) -c constraints.txt -e '.[embedded]'
	touch $(SERVE_STAMP)

$(STAMP): $(SERVE_STAMP) pyproject.toml constraints.txt
	@echo "make: installing the test and lint tools into $(VENV)"
	$(UV) pip install --python $(PY) -c constraints.txt -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)  ## install everything (the app, the embedded database, test and lint tools) into .venv

run: $(SERVE_STAMP)  ## serve the API (embedded database, seeded) on HOST:PORT
	$(PY) -m app_lib serve

dev: $(SERVE_STAMP)  ## serve with code reload; the embedded database and its data survive reloads
	$(PY) -m app_lib dev

reset: $(SERVE_STAMP)  ## wipe the embedded database's data (DATA_DIR, default .data/)
	$(PY) -m app_lib reset

lint: $(STAMP)  ## ruff check, ruff format --check, mypy --strict app_lib, the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict app_lib
	$(VENV)/bin/lint-imports

test: lint cfn-lint $(DYNALITE_STAMP) $(CLIENTS_NODE_STAMP) chromium  ## lint + the whole suite on moto's server, then test-dynalite
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-dynalite

$(DYNALITE_STAMP): $(DYNALITE_DIR)/package.json $(DYNALITE_DIR)/package-lock.json
	npm ci --prefix $(DYNALITE_DIR) --ignore-scripts --no-audit --no-fund
	touch $(DYNALITE_STAMP)

$(CLIENTS_NODE_STAMP): $(CLIENTS_NODE_DIR)/package.json $(CLIENTS_NODE_DIR)/package-lock.json
	npm ci --prefix $(CLIENTS_NODE_DIR) --ignore-scripts --no-audit --no-fund
	touch $(CLIENTS_NODE_STAMP)

.PHONY: clients-node
clients-node: $(CLIENTS_NODE_STAMP)  ## install tests/clients/node (the TypeScript client generator and tsc)

.PHONY: chromium
chromium:  ## headless Chromium for the /docs test: Debian's package, installed when missing
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	{ echo "make chromium: install Chromium (Debian: apt-get install chromium) for the docs test" >&2; exit 1; }

.PHONY: dynalite test-dynalite
dynalite: $(DYNALITE_STAMP)  ## install dynalite into tests/dynalite/node_modules

test-dynalite: $(STAMP) $(DYNALITE_STAMP)  ## the suites dynalite supports, against dynalite
	TEST_DYNAMODB=dynalite $(PY) -m pytest $(DYNALITE_SUITES)

format: $(STAMP)  ## ruff --fix and ruff format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## CPU per request side by side, embedded latency, scale-out, profile (~4 min); writes bench/results.json
	$(PY) -m bench

seed: $(SERVE_STAMP)  ## load the bundled passengers (or FILE=path.csv) into DYNAMODB_HOST (not the embedded one)
	$(PY) -m app_lib seed passengers $(if $(FILE),--file $(FILE))

.PHONY: soak
soak: $(STAMP)  ## 8 clients of mixed traffic on `make run`'s set-up (SOAK_SECONDS, default 180); fails if the embedded database keeps growing
	$(PY) scripts/soak.py

.PHONY: fuzz
fuzz: $(STAMP)  ## schemathesis (schemathesis.toml) against `make run`'s app on a free port; writes fuzz-report/
	$(PY) scripts/fuzz.py

clean:  ## remove .venv and the caches
	rm -rf $(VENV) .venv-tools .mypy_cache .ruff_cache .pytest_cache $(DYNALITE_DIR)/node_modules

container-smoke:  ## build the image with podman (installs it if needed) and smoke-test it on 127.0.0.1
	bash scripts/container_smoke.sh

# CloudFormation linters in a venv of their own: checkov pins packages that would fight the app's.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

$(TOOLS_STAMP): cloudformation/tools-constraints.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet -c cloudformation/tools-constraints.txt cfn-lint checkov
	touch $(TOOLS_STAMP)

.PHONY: cfn-lint
cfn-lint: $(TOOLS_STAMP)  ## cfn-lint (no error or warning) and checkov (no failed check) on cloudformation/
	$(TOOLS_VENV)/bin/cfn-lint cloudformation/*.yaml
	BC_SKIP_MAPPING=TRUE $(TOOLS_VENV)/bin/checkov -d cloudformation --framework cloudformation \
		--skip-download --compact --quiet

worker: $(SERVE_STAMP)  ## long-poll the jobs queue (needs a shared DYNAMODB_HOST and JOBS_QUEUE_URL; `make run` has its own worker thread)
	$(PY) -m app_lib worker
