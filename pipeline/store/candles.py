"""The `candles` table: bulk upserts through COPY and the reads ingestion and checks need."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from pipeline.data.candles import candle_frame

_STAGING = """CREATE TEMP TABLE candles_staging (
    open_time_ms bigint, open double precision, high double precision,
    low double precision, close double precision, volume double precision
) ON COMMIT DROP"""

_UPSERT = """
INSERT INTO candles AS c (exchange, symbol, timeframe, open_time, open, high, low, close, volume)
SELECT %(exchange)s, %(symbol)s, %(timeframe)s, to_timestamp(open_time_ms / 1000.0),
       open, high, low, close, volume
FROM candles_staging
ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE
    SET open = excluded.open, high = excluded.high, low = excluded.low,
        close = excluded.close, volume = excluded.volume, ingested_at = now()
    WHERE (c.open, c.high, c.low, c.close, c.volume)
          IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close,
                            excluded.volume)
RETURNING (xmax = 0) AS inserted
"""


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class SeriesSummary:
    rows: int
    first_ms: int | None
    last_ms: int | None


def copy_text(frame: pd.DataFrame) -> bytes:
    """Candles as COPY text rows, ms timestamp first; floats keep their shortest exact repr."""
    return frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n").encode()


def copy_candles(cur: psycopg.Cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY candles into `table` (columns: ms timestamp, open, high, low, close, volume)."""
    with cur.copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(copy_text(frame))


def upsert_candles(
    conn: psycopg.Connection, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame
) -> UpsertResult:
    """Write a validated batch atomically: COPY into staging, then one INSERT … ON CONFLICT.

    Unchanged rows are skipped, so re-ingesting the same candles is a no-op.
    """
    if frame.empty:
        return UpsertResult(0, 0)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_STAGING)
        copy_candles(cur, "candles_staging", frame)
        cur.execute(_UPSERT, {"exchange": exchange, "symbol": symbol, "timeframe": timeframe})
        flags = [row[0] for row in cur.fetchall()]
    inserted = sum(flags)
    return UpsertResult(inserted=inserted, updated=len(flags) - inserted)


_KEY = "exchange = %s AND symbol = %s AND timeframe = %s"


def summary(conn: psycopg.Connection, exchange: str, symbol: str, timeframe: str) -> SeriesSummary:
    row = conn.execute(
        f"""SELECT count(*), (extract(epoch FROM min(open_time)) * 1000)::bigint,
                   (extract(epoch FROM max(open_time)) * 1000)::bigint
            FROM candles WHERE {_KEY}""",
        (exchange, symbol, timeframe),
    ).fetchone()
    conn.commit()
    assert row is not None
    return SeriesSummary(rows=int(row[0]), first_ms=row[1], last_ms=row[2])


def load_candles(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """Stored candles of one series, ascending, as the standard candle frame."""
    clauses, params = [_KEY], [exchange, symbol, timeframe]
    if start_ms is not None:
        clauses.append("open_time >= to_timestamp(%s / 1000.0)")
        params.append(start_ms)
    if end_ms is not None:
        clauses.append("open_time <= to_timestamp(%s / 1000.0)")
        params.append(end_ms)
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"""SELECT (extract(epoch FROM open_time) * 1000)::bigint, open, high, low, close,
                       volume
                FROM candles WHERE {" AND ".join(clauses)} ORDER BY open_time""",
            params,
        )
        rows = cur.fetchall()
    conn.commit()
    return candle_frame(rows)


def gap_stats(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    step_ms: int,
    limit: int = 20,
) -> tuple[int, list[tuple[int, int]]]:
    """Missing candles inside a stored series: (count, first `limit` missing ranges in ms)."""
    rows = conn.execute(
        f"""WITH t AS (
                SELECT (extract(epoch FROM open_time) * 1000)::bigint AS ms,
                       (extract(epoch FROM lag(open_time) OVER (ORDER BY open_time)) * 1000)::bigint
                           AS prev
                FROM candles WHERE {_KEY})
            SELECT prev + %s, ms - %s, (ms - prev) / %s - 1 FROM t
            WHERE ms - prev > %s ORDER BY ms""",
        (exchange, symbol, timeframe, step_ms, step_ms, step_ms, step_ms),
    ).fetchall()
    conn.commit()
    return int(sum(r[2] for r in rows)), [(int(r[0]), int(r[1])) for r in rows[:limit]]
