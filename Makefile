# Switchboard — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip

.PHONY: run test install install-test lint bench-api bench-sip bench-media clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	./scripts/install-system-deps.sh
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	./scripts/install-system-deps.sh --test
	$(PIP) install -q -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Start the server on embedded defaults (embedded PostgreSQL, local voice).
run: install
	$(BIN)/switchboard serve

## Install everything the tests need and run the whole suite.
test: install-test
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench-api: install-test
	$(BIN)/python -m bench.api_load $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
