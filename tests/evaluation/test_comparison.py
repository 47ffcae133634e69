"""Strategies side by side: decided sides land on their candles; the references are added once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.backtest import BacktestConfig, buy_and_hold, run_backtest
from pipeline.evaluation.comparison import compare_strategies, decision_series, period_candles


def _stamps(frame: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], unit="ms", utc=True))


def test_a_side_lands_on_the_candle_it_was_decided_at() -> None:
    frame = pd.DataFrame({"timestamp": np.arange(5, dtype=np.int64) * 3_600_000})
    stamps = _stamps(frame)
    side = decision_series(frame, stamps[[1, 3]], np.array([1, -1], dtype=np.int8))
    assert side.tolist() == [0, 1, 0, -1, 0] and side.dtype == np.int8


def test_every_market_gets_each_strategy_then_the_references(sample_frames) -> None:
    cfg = BacktestConfig(horizon=1)
    candles = {m: sample_frames[m].iloc[:600] for m in ("BTCUSDT", "ETHUSDT")}
    start, end = _stamps(candles["BTCUSDT"])[[100, 499]]
    rng = np.random.default_rng(1)
    market, stamp = [], []
    for m, frame in candles.items():
        chosen = _stamps(frame)[rng.choice(np.arange(100, 500), 50, replace=False)]
        market += [m] * len(chosen)
        stamp += list(chosen)
    sides = {"lstm": rng.choice([-1, 0, 1], len(market)).astype(np.int8)}
    out = compare_strategies(candles, start, end, np.array(market), stamp, sides, cfg)
    assert list(out) == ["lstm", "always_long", "buy_and_hold"]
    for m, frame in candles.items():
        period = period_candles(frame, start, end)
        assert len(period) == 400
        mine = np.array(market) == m
        expected = decision_series(period, pd.DatetimeIndex(stamp)[mine], sides["lstm"][mine])
        assert out["lstm"][m].metrics == run_backtest(period, expected, cfg).metrics
        assert out["buy_and_hold"][m].metrics == buy_and_hold(period, cfg).metrics
    alone = compare_strategies(candles, start, end, market, stamp, sides, cfg, references=False)
    assert list(alone) == ["lstm"]
