# The quickstart: `make run` and `make test` on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export ORDERSYNC_CONFIG ?= $(CURDIR)/ordersync.example.toml

.PHONY: run test lint typecheck test-unit test-integration test-e2e screenshots bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "ordersync needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)  ## migrate, seed the demo network if empty, serve on http://127.0.0.1:8000 with demo traffic
	$(BIN)/ordersync serve --demo-traffic

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck  ## everything: unit, integration (SQLite and PostgreSQL), end-to-end
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

screenshots: $(STAMP)  ## the README's screenshots, by the browser tests, into docs/screenshots
	ORDERSYNC_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/e2e/test_console_browser.py -k screens

bench: $(STAMP)  ## order placement (needs wrk), the 1C stock import and the console, on PostgreSQL
	$(BIN)/python bench/orders.py
	$(BIN)/python bench/cml_import.py
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
