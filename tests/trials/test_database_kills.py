"""The database-kills trial, small: the postmaster SIGKILLed once mid-ingest and twice during
live trading; nothing lost or duplicated, and each market's trades equal its backtest's."""

from __future__ import annotations

from trials.database_kills import run_trial


def test_postgres_killed_mid_ingest_and_mid_live_loses_nothing(sample_dir) -> None:
    outcome = run_trial(
        ingest_kills=1,
        live_kills=2,
        live_candles=8,
        seed=3,
        data_dir=sample_dir,
        markets=["BTC/USDT:USDT"],
        log=lambda message: None,
    )
    assert outcome.lost == []
    assert (outcome.cases, outcome.survived) == (3, 3)
    assert outcome.details["live_markets"] == 2
    assert outcome.details["live_orders"] > 0  # trading happened around the kills
    assert outcome.passed
