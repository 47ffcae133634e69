"""Shared fixtures: a real embedded PostgreSQL, the sample candles, small candle folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO.parent / "shared" / "data" / "binance-usdm-1h"


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
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded server for the session, in a private SIGNALS_HOME; stopped at the end."""
    from pipeline.store.embedded import embedded_url, stop_embedded

    home = tmp_path_factory.mktemp("signals-home")
    os.environ["SIGNALS_HOME"] = str(home)
    pgdata = home / "pg"
    url = embedded_url(pgdata)
    yield url
    from pipeline.store.database import close_all

    close_all()
    stop_embedded(pgdata)


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


def write_folder(path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """A candle folder in the sample format (gzip CSV per market id)."""
    path.mkdir(parents=True, exist_ok=True)
    for market, frame in frames.items():
        frame.to_csv(path / f"{market}.csv.gz", index=False)
    return path


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
