# The two commands of the README. Both create .venv on first use and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs the server, trains the demo models when the registry is empty, serves on :8000.
serve: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/serving train --all --if-empty
	exec $(BIN)/serving serve

# Installs what the tests need (redis-server from Debian when missing), lints, runs the suite.
test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	$(MAKE) lint
	$(BIN)/pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy serving training tests bench
	$(BIN)/lint-imports
