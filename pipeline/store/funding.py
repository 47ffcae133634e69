"""The `funding_rates` table: idempotent upserts and the reads ingestion and the backtest need."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from pipeline.store.candles import SeriesSummary

# DO UPDATE rather than DO NOTHING: the newest fetch is the exchange's current word, so a
# corrected rate replaces the old one; unchanged rows are skipped, so re-ingesting writes 0.
_UPSERT = """
INSERT INTO funding_rates AS f (exchange, market, funding_ms, rate)
SELECT %(exchange)s, %(market)s, t.funding_ms, t.rate
FROM unnest(%(times)s::bigint[], %(rates)s::double precision[]) AS t (funding_ms, rate)
ON CONFLICT (exchange, market, funding_ms) DO UPDATE
    SET rate = excluded.rate, ingested_at = now()
    WHERE f.rate IS DISTINCT FROM excluded.rate
RETURNING 1
"""

_KEY = "exchange = %s AND market = %s"


def upsert_funding(
    conn: psycopg.Connection, exchange_id: str, market: str, rows: Iterable[tuple[int, float]]
) -> int:
    """Write (funding_ms, rate) rows in one transaction; returns rows inserted or changed.

    One statement over two arrays: a whole history is a few thousand rows, no COPY needed.
    """
    pairs = [(int(ms), float(rate)) for ms, rate in rows]
    if not pairs:
        return 0
    if len({ms for ms, _ in pairs}) != len(pairs):
        raise ValueError(f"funding rows for {exchange_id} {market} repeat a settlement time")
    params = {
        "exchange": exchange_id,
        "market": market,
        "times": [ms for ms, _ in pairs],
        "rates": [rate for _, rate in pairs],
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_UPSERT, params)
        return len(cur.fetchall())


def load_funding(
    conn: psycopg.Connection,
    exchange_id: str,
    market: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[tuple[int, float]]:
    """Stored (funding_ms, rate) of one market in [start_ms, end_ms], ascending."""
    query = f"SELECT funding_ms, rate FROM funding_rates WHERE {_KEY}"
    params: list[object] = [exchange_id, market]
    if start_ms is not None:
        query += " AND funding_ms >= %s"
        params.append(start_ms)
    if end_ms is not None:
        query += " AND funding_ms <= %s"
        params.append(end_ms)
    rows = conn.execute(query + " ORDER BY funding_ms", params).fetchall()
    conn.commit()
    return [(int(ms), float(rate)) for ms, rate in rows]


def newest_funding_ms(conn: psycopg.Connection, exchange_id: str, market: str) -> int | None:
    """The newest stored settlement of one market (where ingestion resumes), or None."""
    row = conn.execute(
        f"SELECT max(funding_ms) FROM funding_rates WHERE {_KEY}", (exchange_id, market)
    ).fetchone()
    conn.commit()
    return None if row is None or row[0] is None else int(row[0])


def funding_summary(conn: psycopg.Connection, exchange_id: str, market: str) -> SeriesSummary:
    """How many settlements of one market are stored, and the first and last of them."""
    row = conn.execute(
        f"SELECT count(*), min(funding_ms), max(funding_ms) FROM funding_rates WHERE {_KEY}",
        (exchange_id, market),
    ).fetchone()
    conn.commit()
    assert row is not None
    return SeriesSummary(rows=int(row[0]), first_ms=row[1], last_ms=row[2])
