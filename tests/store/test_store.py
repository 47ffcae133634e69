"""PostgreSQL store: migrations, atomic idempotent upserts, surviving a server restart."""

from pathlib import Path

import pandas as pd
import psycopg
import pytest

from pipeline.data.ingest import CsvCandleSource, ingest_partition
from pipeline.store import candles as store
from pipeline.store.database import Database
from pipeline.store.embedded import embedded_url, stop_embedded
from pipeline.store.migrations import available, migrate

EX, SYM = "binanceusdm", "BTC/USDT:USDT"


def test_migrations_are_recorded_once(db: Database) -> None:
    with db.connection() as conn:
        assert migrate(conn) == []  # Database() already applied them
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _, _ in available()]
    assert versions[0] == 1


def test_upsert_is_idempotent_and_counts_inserts(db: Database, sample_frames) -> None:
    frame = sample_frames["BTCUSDT"].head(500)
    with db.connection() as conn:
        assert store.upsert_candles(conn, EX, SYM, "1h", frame) == store.UpsertResult(500, 0)
        assert store.upsert_candles(conn, EX, SYM, "1h", frame) == store.UpsertResult(0, 0)
        changed = frame.copy()
        changed.loc[10, "volume"] = 123.0
        assert store.upsert_candles(conn, EX, SYM, "1h", changed) == store.UpsertResult(0, 1)
        loaded = store.load_candles(conn, EX, SYM, "1h")
    pd.testing.assert_frame_equal(loaded, changed)


def test_a_failed_write_leaves_nothing(db: Database, sample_frames) -> None:
    frame = sample_frames["BTCUSDT"].head(100).copy()
    frame.loc[50, "low"] = -1.0  # the table's CHECK refuses it inside the transaction
    with db.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            store.upsert_candles(conn, EX, SYM, "1h", frame)
        conn.rollback()
        assert store.summary(conn, EX, SYM, "1h").rows == 0


def test_missing_candles_are_counted_and_located(db: Database, sample_frames) -> None:
    frame = sample_frames["BTCUSDT"].head(50).drop(index=[10, 11, 30]).reset_index(drop=True)
    with db.connection() as conn:
        store.upsert_candles(conn, EX, SYM, "1h", frame)
        missing = store.summary(conn, EX, SYM, "1h").missing(3_600_000)
        ranges = store.gap_ranges(conn, EX, SYM, "1h", 3_600_000)
    ts = sample_frames["BTCUSDT"]["timestamp"]
    assert missing == 3
    assert ranges == [(ts[10], ts[11]), (ts[30], ts[30])]


def test_binary_copy_round_trips_exactly(db: Database, sample_frames) -> None:
    """Every float bit and every timestamp survives the hand-written binary encoder."""
    frame = sample_frames["XRPUSDT"]
    with db.connection() as conn:
        store.upsert_candles(conn, EX, "XRP/USDT:USDT", "1h", frame)
        loaded = store.load_candles(conn, EX, "XRP/USDT:USDT", "1h")
        first = conn.execute(
            "SELECT min(open_time) FROM candles WHERE symbol = 'XRP/USDT:USDT'"
        ).fetchone()[0]
    assert first.isoformat() == "2020-10-23T08:00:00+00:00"
    assert (loaded.to_numpy() == frame.to_numpy()).all()


def test_restarting_the_embedded_server_between_ingests_loses_nothing(
    tmp_path: Path, small_dir: Path
) -> None:
    """A private server: stop it between two ingests; the second adds only what is new."""
    pgdata = tmp_path / "pg"
    db = Database(embedded_url(pgdata))
    try:
        source = CsvCandleSource(str(small_dir))
        first = ingest_partition(db, source, SYM, "1h", 0)
        assert first.rows_added == 720
        assert stop_embedded(pgdata)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(db.url, connect_timeout=2)
        embedded_url(pgdata)  # start again, as the next process would
        second = ingest_partition(db, source, SYM, "1h", 0)  # same pool, reconnects
        assert second.rows_added == 0
        assert second.rows_total == 720
        four = ingest_partition(db, source, SYM, "4h", 0)
        assert four.rows_total == 180
    finally:
        db.close()
        stop_embedded(pgdata)
