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


MIGRATE_AT_ONCE = """
import sys, time
import psycopg
from pipeline.store.migrations import migrate
url, start_at = sys.argv[1], float(sys.argv[2])
with psycopg.connect(url) as conn:
    time.sleep(max(0.0, start_at - time.time()))  # both processes ask at the same moment
    print(",".join(map(str, migrate(conn))))
"""


def test_two_processes_migrating_at_once_apply_each_migration_once(database_url: str) -> None:
    """Two processes on an empty database at the same moment: the advisory lock lets one
    apply every migration and the other find them applied (no error, no second run)."""
    import subprocess
    import sys
    import time

    start_at = f"{time.time() + 3.0:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT_ONCE, database_url, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outputs]
    applied = sorted(out.strip() for out, _ in outputs)
    everything = ",".join(str(v) for v, _, _ in available())
    assert applied == ["", everything]  # one applied them all, the other none
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version")
        assert all(count == 1 for _, count in rows)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            available()
        )
