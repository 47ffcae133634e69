# The README's two commands: `make run` (main job) and `make test` (the suite). Both set up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SIGNALS_HOME ?= $(CURDIR)/.signals
export DAGSTER_HOME ?= $(SIGNALS_HOME)/dagster

.PHONY: setup lock run test lint ui bench bench-deps bench-backtest bench-portfolio bench-evaluation bench-tuning bench-scaleout bench-imports db-stop clean

# uv installs exactly what uv.lock resolved (torch's CPU build included); `make lock` re-resolves.
UV_VERSION := uv>=0.13,<0.14
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif

# torch's CPU build: uv.lock takes it from this machine kind's wheel folder. Where that file
# is not on disk, everything else comes from the lock and torch from PyTorch's CPU index (the
# same version, CPU build), so set-up works on any Linux x86_64 machine with Python 3.11.
# `--no-config` there: pyproject's find-links names the folder, and uv refuses a missing one
# even for a frozen sync that installs nothing from it.
TORCH_WHEEL := /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

# uv sync of the lock with the given extras; torch from the wheel folder or PyTorch's index.
# Bytecode compiled at install: every Dagster run is a new process, and one that compiles
# Dagster, pandas and ccxt from source (PYTHONDONTWRITEBYTECODE set, or a read-only install)
# spends seconds of CPU doing so (bench/README.md, Import weight).
export UV_COMPILE_BYTECODE := 1
define sync
	$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "$(UV_VERSION)"
	if [ -f "$(TORCH_WHEEL)" ]; then \
		UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen $(1) --quiet; \
	else \
		echo "no $(TORCH_WHEEL): torch 2.13.0 (CPU) from $(TORCH_CPU_INDEX)" >&2; \
		UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen $(1) --quiet \
			--no-install-package torch --no-config && \
		$(UV) pip install --quiet --python $(VENV)/bin/python "torch==2.13.0" \
			--index-url $(TORCH_CPU_INDEX) --no-config; \
	fi
endef

# Re-run the install whenever the project or its lock changes.
$(VENV)/.installed: pyproject.toml uv.lock Makefile
	$(call sync,--extra dev)
	touch $@

# The project's own modules too (compileall skips those already compiled and unchanged).
setup: $(VENV)/.installed
	@$(BIN)/python -m compileall -q pipeline assets resources trials bench

lock:  ## re-resolve uv.lock after changing dependencies
	$(UV) lock

run: setup  ## materialise ohlcv for the configured markets × timeframes
	$(BIN)/signals run

test: setup  ## lint, the import contracts, then the whole suite
	scripts/system-packages.sh chromium redis-server
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadgroup --no-loadscope-reorder --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: setup  ## Dagster webserver + daemon on http://127.0.0.1:3000 (runs kept in PostgreSQL)
	mkdir -p $(DAGSTER_HOME)
	grep -qs "storage:" $(DAGSTER_HOME)/dagster.yaml || cp pipeline/dagster_dev.yaml $(DAGSTER_HOME)/dagster.yaml
	SIGNALS_DAGSTER_PG_URL="$$($(BIN)/signals db dagster-url)" $(BIN)/dagster dev -w workspace.yaml

# Benchmarks need the `bench` extra (vectorbt); the tests never do. `make setup`/`make test`
# sync without it (uv removes it again), so every bench target syncs it first.
bench-deps: setup
	$(call sync,--extra dev --extra bench)

bench: bench-deps
	$(BIN)/python bench/ingest.py

bench-backtest: bench-deps  ## our replay against vectorbt: speed and same final equity
	$(BIN)/python bench/backtest.py --repeat 7

bench-portfolio: bench-deps  ## our shared-equity portfolio replay against vectorbt's from_orders
	$(BIN)/python bench/portfolio.py --repeat 7

bench-evaluation: bench-deps  ## walk-forward wall time for 1, 2 and 4 folds, and its phases
	$(BIN)/python bench/evaluation_folds.py

bench-tuning: bench-deps  ## model search: trials per hour with 1 and 2 workers, a trial's phases
	$(BIN)/python bench/tuning.py

# Needs redis-server (Debian's; .ci/run installs it) and nothing from the `bench` extra.
bench-scaleout: setup  ## the main job in-process, on 1 and on 2 Celery workers: wall times, same materialisations
	scripts/system-packages.sh redis-server
	$(BIN)/python bench/scaleout.py

# Nothing from the `bench` extra: what every run process pays to import the code location.
bench-imports: setup  ## CPU of importing the Definitions (both strategies), heavy libraries loaded
	$(BIN)/python bench/import_weight.py

db-stop:
	$(BIN)/signals db stop

clean: db-stop
	rm -rf $(SIGNALS_HOME)
