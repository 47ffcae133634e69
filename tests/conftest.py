"""Shared fixtures: a real embedded PostgreSQL, the sample candles, small candle folders."""

from __future__ import annotations

import os

# Under pytest-xdist every worker is a process of its own: one thread each for the numeric
# libraries (OpenMP, BLAS, torch), or the workers' threads spin against each other on the
# machine's few cores. Set before numpy is imported (pandas below), which reads them once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import psycopg
import pytest

# The Definitions wire one strategy per process (its partitions, jobs and sensor are read at
# import). The suite's process and the subprocesses it starts run the barrier strategy's
# chain, which most orchestration tests were written for; the portfolio strategy (the
# product's default) is tested through its own assets, its live job and, in subprocesses
# that set SIGNALS_STRATEGY=portfolio, its Definitions and `signals run`.
os.environ.setdefault("SIGNALS_STRATEGY", "barrier")

# A suite started as a background job (`make test &`, a runner without a terminal) inherits
# SIGINT ignored, and Dagster's in-process runs map SIGTERM to SIGINT's handler
# (dagster._utils.interrupts): the workers would then ignore SIGTERM and hand that on to every
# process they start, which `terminate` could no longer stop (seen: a multiprocessing pool and
# the replay exchange's CLI hung). Start every worker as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

from tests.helpers.folders import write_folder

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO.parent / "shared" / "data" / "binance-usdm-1h"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (`--dist loadgroup`, as `make test` runs), every test file stays on
    one worker, so its module fixtures are built once; files marked with one group (the
    modules that share the session's chain of assets) share a worker and that chain."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    # The longest groups first (`make test` keeps this order: --no-loadscope-reorder), so that
    # no worker starts one of them while the others are finishing: 40-180 s each, measured.
    items.sort(key=lambda item: _slow_rank(item.nodeid))


SLOW_FIRST = (
    "tests/orchestration/test_features_assets.py",  # the "chain" group: these three together
    "tests/orchestration/test_modeling_assets.py",
    "tests/orchestration/test_portfolio_assets.py",
    "tests/ui/test_dagster_ui.py",
    "tests/evaluation/test_walk_forward.py",
    "tests/cli/test_cli.py",
    "tests/trials/test_database_kills.py",
    "tests/evaluation/test_portfolio_walk_forward.py",
    "tests/orchestration/test_celery_scaleout.py",
    "tests/trials/test_secrets.py",
    "tests/orchestration/test_live_e2e.py",
    "tests/orchestration/test_live_barrier_e2e.py",
    "tests/orchestration/test_bybit_live_e2e.py",
    "tests/trials/test_daemon_kills.py",
    "tests/execution/test_barrier_manager.py",
)


def _slow_rank(nodeid: str) -> int:
    path = nodeid.split("::", 1)[0]
    return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker under `--dist loadgroup`, every test id must carry its group (the
    suffix xdist adds): without it the groups are silently ignored (pytest-xdist issue 1386,
    pytest 9.2), a file's tests spread over workers and its module fixtures are built twice."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not getattr(
        session.config.option, "loadgroup", False
    ):
        return
    ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(
            f"--dist loadgroup is not grouping ({ungrouped[0]} has no @group): this pytest and "
            "pytest-xdist do not work together (see the pytest pin in pyproject.toml)"
        )


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The shared sample candles; their absence is a setup error, not a reason to skip."""
    if not (SAMPLE_DATA / "BTCUSDT.csv.gz").exists():
        pytest.fail(
            f"sample data missing: expected {SAMPLE_DATA}/BTCUSDT.csv.gz (../shared/data relative "
            "to the repository root)",
            pytrace=False,
        )
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def sample_frames(sample_dir: Path) -> dict[str, pd.DataFrame]:
    from pipeline.data.csv_source import CandleFolder

    folder = CandleFolder(sample_dir)
    return {m: folder.read(s) for m, s in zip(folder.market_ids(), folder.symbols(), strict=True)}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One embedded server for the session, in a private SIGNALS_HOME; stopped at the end.

    The home is outside pytest's basetemp on purpose: the server runs as another user (we
    are root), and each new pytest session makes /tmp/pytest-of-root private again, which
    would cut a server of a session still running off its own data folder.
    """
    from pipeline.store.embedded import embedded_url, stop_embedded

    home = Path(tempfile.mkdtemp(prefix="signals-tests-"))
    os.environ["SIGNALS_HOME"] = str(home)
    pgdata = home / "pg"
    url = embedded_url(pgdata)
    yield url
    from pipeline.store.database import close_all

    close_all()
    stop_embedded(pgdata)
    shutil.rmtree(home, ignore_errors=True)


def _with_dbname(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture()
def database_url(pg_server: str) -> str:
    """A fresh database on the session server, so each test starts from an empty schema."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_dbname(pg_server, name)


@pytest.fixture()
def db(database_url: str):
    from pipeline.store.database import Database

    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture()
def small_dir(tmp_path: Path, sample_frames: dict[str, pd.DataFrame]) -> Path:
    """BTC and ETH, 30 days from 2021-01-01: enough for 4h/1d buckets, quick to ingest."""
    start = 1609459200000  # 2021-01-01T00:00Z
    end = start + 30 * 86_400_000
    frames = {
        m: f[(f["timestamp"] >= start) & (f["timestamp"] < end)].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT")
    }
    return write_folder(tmp_path / "candles", frames)


class ChainRun:
    """Every asset of the chain materialised in-process on a slice of the sample data."""

    END = 1640995200000  # 2022-01-01: a little over a year of hours per market
    SELECTION: ClassVar[dict] = {
        "train_end": "2021-09-30",
        "validation_end": "2021-12-31",
        "folds": 2,
        "repeats": 1,
        "max_iter": 20,
    }
    MODEL: ClassVar[dict] = {
        "train_start": "2020-10-23",
        "train_end": "2021-09-15",
        "validation_end": "2021-12-31",
        "max_epochs": 2,
        "window": 16,
    }

    def __init__(self, root: Path, frames: dict[str, pd.DataFrame], pg_url: str):
        import dagster as dg

        from pipeline.definitions import ASSETS
        from pipeline.store.parquet import ParquetStore
        from resources.database import PostgresResource
        from resources.exchange import CandleSourceResource
        from resources.io_managers import JsonIOManager, ParquetIOManager
        from resources.project import ProjectResource

        self.assets = ASSETS
        folder = write_folder(
            root / "candles", {m: f[f["timestamp"] < self.END] for m, f in frames.items()}
        )
        self.database_url = pg_url
        self.resources = {
            "database": PostgresResource(url=pg_url),
            "candle_source": CandleSourceResource(
                source="csv", data_dir=str(folder), since="2020-01-01"
            ),
            "parquet_io_manager": ParquetIOManager(base_uri=str(root / "store")),
            "json_io_manager": JsonIOManager(base_uri=str(root / "store")),
            "project": ProjectResource(home=str(root / "home")),
        }
        self.instance = dg.DagsterInstance.ephemeral()
        self.store = ParquetStore(root / "store")
        self.results: dict = {}

    def run(self, name: str, key=None, config: dict | None = None, raise_on_error: bool = True):
        import dagster as dg

        asset = next(a for a in self.assets if a.key.to_user_string() == name)
        run_config = {"ops": {name: {"config": config}}} if config else None
        result = dg.materialize(
            self.assets,
            selection=[asset],
            partition_key=key,
            resources=self.resources,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=raise_on_error,
        )
        self.results[(name, key)] = result
        return result


@pytest.fixture(scope="session")
def chain_run(tmp_path_factory, sample_frames, pg_server) -> ChainRun:
    """ohlcv → market_factor → features → selected_features for every configured market."""
    from pipeline.partitions import market_partitions, partition_key, timeframe_partitions

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "chain"')
    run = ChainRun(
        tmp_path_factory.mktemp("chain"), sample_frames, _with_dbname(pg_server, "chain")
    )
    for market in market_partitions.get_partition_keys():
        for timeframe in timeframe_partitions.get_partition_keys():
            run.run("ohlcv", partition_key(market, timeframe))
    for timeframe in timeframe_partitions.get_partition_keys():
        run.run("market_factor", timeframe)
    for market in market_partitions.get_partition_keys():
        run.run("features", partition_key(market, "1h"))
    run.run("selected_features", None, ChainRun.SELECTION)
    return run
