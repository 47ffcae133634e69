"""The funding_rates table: idempotent upserts, ordered reads, where ingestion resumes."""

import pytest

from pipeline.store.database import Database
from pipeline.store.funding import (
    funding_summary,
    load_funding,
    newest_funding_ms,
    upsert_funding,
)

EX, SYM = "binanceusdm", "BTC/USDT:USDT"
H8 = 8 * 3_600_000
T0 = 1609459200000


def test_upsert_twice_writes_once_and_a_changed_rate_replaces(db: Database) -> None:
    rows = [(T0 + 2 * H8, 0.0003), (T0, 0.0001), (T0 + H8, -0.0002)]
    with db.connection() as conn:
        assert newest_funding_ms(conn, EX, SYM) is None
        assert upsert_funding(conn, EX, SYM, rows) == 3
        assert upsert_funding(conn, EX, SYM, rows) == 0
        assert upsert_funding(conn, EX, SYM, [(T0 + H8, -0.0004)]) == 1
        assert upsert_funding(conn, EX, "ETH/USDT:USDT", [(T0, 0.5)]) == 1
        assert load_funding(conn, EX, SYM) == [
            (T0, 0.0001),
            (T0 + H8, -0.0004),
            (T0 + 2 * H8, 0.0003),
        ]
        assert load_funding(conn, EX, SYM, T0 + 1, T0 + 2 * H8) == [
            (T0 + H8, -0.0004),
            (T0 + 2 * H8, 0.0003),
        ]
        assert load_funding(conn, EX, SYM, end_ms=T0) == [(T0, 0.0001)]
        assert newest_funding_ms(conn, EX, SYM) == T0 + 2 * H8
        summary = funding_summary(conn, EX, SYM)
    assert (summary.rows, summary.first_ms, summary.last_ms) == (3, T0, T0 + 2 * H8)


def test_a_batch_that_repeats_a_time_is_refused_whole(db: Database) -> None:
    with db.connection() as conn:
        with pytest.raises(ValueError, match="repeat a settlement time"):
            upsert_funding(conn, EX, SYM, [(T0, 0.0001), (T0, 0.0002)])
        assert load_funding(conn, EX, SYM) == []
