# The commands of the README. Each creates .venv on first use and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo models go live under the `production` alias on a fresh registry only; a version
# trained later is served once it is promoted (tests/unit/test_cli.py runs this line).
DEMO_TRAIN := train --all --if-empty --promote production

.PHONY: serve test test-fast lint test-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs the server, trains the demo models when the registry is empty, serves on :8000.
serve: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/serving $(DEMO_TRAIN)
	exec $(BIN)/serving serve

# The full suite: lint, then every test, real server processes and redis-server included.
test: test-tools
	$(MAKE) lint
	$(BIN)/pytest

# Unit and in-process API tests only: no server processes, no redis-server. No lint.
test-fast: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pytest tests/unit tests/api -q

# Installs what the tests need (redis-server from Debian when missing).
test-tools: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy serving training tests bench
	$(BIN)/lint-imports
