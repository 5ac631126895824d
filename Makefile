# Credit ledger and AI settings service. `make` alone prints this help.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run seed test lint types unit bench crash-test clean

help: ## this help
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the project and its development tools

run: $(STAMP) ## install, seed and serve on 127.0.0.1:8000 (SQLite under ./var/)
	$(BIN)/ledger serve --host $(HOST) --port $(PORT)

seed: $(STAMP) ## seed the model registry and credit costs
	$(BIN)/ledger seed

lint: $(STAMP) ## ruff
	$(BIN)/ruff check src tests bench

types: $(STAMP) ## mypy (strict) on src/
	$(BIN)/mypy

test: $(STAMP) lint types ## lint, types and the whole suite on SQLite and PostgreSQL
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m crash $(PYTEST_ARGS)

crash-test: $(STAMP) ## SIGKILL the server / restart PostgreSQL under load (longer run)
	CRASH_LOAD_SECONDS=10 $(BIN)/python -m pytest -m crash $(PYTEST_ARGS)

unit: $(STAMP) ## the tests that need no database
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks on PostgreSQL: writes bench/results.json and prints a table
	@command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null 2>&1 \
		|| echo "wrk is missing (apt-get install wrk): the HTTP figures will be skipped"
	$(BIN)/python -m bench

clean: ## remove the venv, caches and ./var
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
