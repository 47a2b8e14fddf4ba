# The two commands of the README: `make dev` (the whole stack) and `make test` (every test).
# Both install what they need; nothing has to be set up by hand first.

SHELL := /bin/bash
# Production runs 3.12: find pyenv's 3.12 even when pyenv's global version is another one.
PYTHON ?= $(shell (python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) || ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 2>/dev/null | tail -n 1)
# uv must use that interpreter; it cannot download one here.
export UV_PYTHON_DOWNLOADS := never
# `uv --version`, not `command -v uv`: a pyenv shim named uv exists where the active version has none.
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo "$(PYTHON) -m uv")
# The scripts use the same uv (scripts/check_infra.sh, scripts/stage_function.py).
export UV
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
PYTEST_ARGS ?=

.PHONY: chaos conformance dev dev-reset test lint js-unit unit integration e2e bench check-infra stage-function clean bootstrap browser vendor

bootstrap: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@uv --version >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) sync --frozen --all-extras --quiet
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

# The page's browser libraries (Firebase, highlight.js), copied from node_modules at the pinned
# versions into the edge's static files; nothing is loaded from a CDN.
vendor:
	@test -d node_modules/firebase || npm ci --no-audit --no-fund --loglevel=error
	@node scripts/vendor_static.mjs

# DEV_ARGS="--edges 3 --functions 3" runs several instances, as production scales out.
DEV_ARGS ?=
dev: bootstrap vendor
	$(PY) -m devstack $(DEV_ARGS)

# `make dev` keeps the emulators' data (sessions, users) across restarts in .devstack/data.
dev-reset:
	rm -rf .devstack/data

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@if [ -x scripts/check_infra.sh ]; then scripts/check_infra.sh; fi

# The page's connection engine, under Node's own test runner (no packages needed).
js-unit:
	node --test tests/unit/js/

unit: bootstrap js-unit
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: bootstrap
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

e2e: bootstrap browser vendor
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test: bootstrap browser vendor lint js-unit conformance
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The benchmarks (not part of `make test`, which runs a tiny smoke of them): prints one table
# and writes bench/results/*.json. BENCH_ARGS="--quick" for a short run.
BENCH_ARGS ?=
bench: bootstrap
	$(PY) -m bench $(BENCH_ARGS)

# 10,000 turns over 500 sessions on 3 edges and 3 function instances, with faults (instances
# killed and restarted, a 20 s Firestore freeze, drops, resends, cancels, stray publishes), all
# on 127.0.0.1; prints one table, exit 1 if any promise broke. CHAOS_ARGS="--seed 2 --turns 2000".
CHAOS_ARGS ?=
chaos: bootstrap
	$(PY) -m chaos $(CHAOS_ARGS)

# Autobahn|Testsuite's fuzzing client (Python 2 only, in its own 2.7 virtualenv, pinned in
# conformance/) against the edge's echo route as gunicorn runs it; prints a table of verdicts.
# CONFORMANCE_ARGS="--target flask-sock" runs it against a plain flask-sock echo server instead.
PYTHON2 ?= $(shell (python2.7 -c 'import sys; print(sys.executable)' 2>/dev/null) || ls -d $$HOME/.pyenv/versions/2.7*/bin/python2.7 /usr/bin/python2.7 2>/dev/null | tail -n 1)
AUTOBAHN := .venv-autobahn
CONFORMANCE_ARGS ?=

$(AUTOBAHN)/.synced: conformance/requirements-py27.txt conformance/requirements-bootstrap-py27.txt
	@test -n "$(PYTHON2)" || { echo "conformance needs Python 2.7 (pyenv install 2.7.18)"; exit 1; }
	rm -rf $(AUTOBAHN)
	PIP_NO_PYTHON_VERSION_WARNING=1 $(PYTHON2) -m pip install --quiet --disable-pip-version-check --no-deps --target $(AUTOBAHN)/bootstrap -r conformance/requirements-bootstrap-py27.txt
	PYTHONPATH=$(AUTOBAHN)/bootstrap $(PYTHON2) -m virtualenv --quiet --no-periodic-update $(AUTOBAHN)
	PIP_NO_PYTHON_VERSION_WARNING=1 $(AUTOBAHN)/bin/pip install --quiet --disable-pip-version-check --no-deps -r conformance/requirements-py27.txt
	@touch $@

conformance: bootstrap $(AUTOBAHN)/.synced
	$(PY) -m conformance $(CONFORMANCE_ARGS)

stage-function: bootstrap
	$(PY) scripts/stage_function.py --out build/function

clean:
	rm -rf $(VENV) .venv-tools $(AUTOBAHN) .devstack build test-artifacts .pytest_cache .mypy_cache .ruff_cache
