# The README's two commands: `make run` (main job) and `make test` (the suite). Both set up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SIGNALS_HOME ?= $(CURDIR)/.signals
export DAGSTER_HOME ?= $(SIGNALS_HOME)/dagster

.PHONY: setup run test lint ui bench db-stop clean

# Re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: a range that admits a newer one would pull CUDA packages.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup  ## materialise ohlcv for the configured markets × timeframes
	$(BIN)/signals run

test: setup  ## lint, then the whole suite
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: setup  ## Dagster webserver + daemon on http://127.0.0.1:3000
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp pipeline/dagster_dev.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	$(BIN)/python bench/ingest.py

db-stop:
	$(BIN)/signals db stop

clean: db-stop
	rm -rf $(SIGNALS_HOME)
