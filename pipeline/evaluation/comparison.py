"""Strategies side by side on the same candles: decided sides replayed, beside always-long
and buy-and-hold.

The candidate's validation backtests and the walk-forward test backtests both come from
here, so a strategy's figure means the same in the model store, the Dagster report and the
evaluation JSON.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import (
    BacktestResult,
    ExitSchedule,
    always_long_decisions,
    buy_and_hold,
    run_backtest,
)

REFERENCES = ("always_long", "buy_and_hold")


def period_candles(candles: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The candles opened in [start, end]."""
    stamps = pd.to_datetime(candles["timestamp"], unit="ms", utc=True)
    return candles[(stamps >= start) & (stamps <= end)].reset_index(drop=True)


def decision_series(candles: pd.DataFrame, timestamps, side: np.ndarray) -> np.ndarray:
    """Per candle, the side decided at its close (0 where no window ended there)."""
    stamps = pd.to_datetime(candles["timestamp"], unit="ms", utc=True)
    mapped = pd.Series(np.asarray(side), index=pd.DatetimeIndex(timestamps))
    return stamps.map(mapped).fillna(0).to_numpy(dtype=np.int8)


def compare_strategies(
    candles: dict[str, pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
    market: np.ndarray,
    timestamp,
    sides: dict[str, np.ndarray],
    cfg: BacktestConfig,
    references: bool = True,
    schedules: dict[str, ExitSchedule] | None = None,
) -> dict[str, dict[str, BacktestResult]]:
    """Strategy → market → backtest over [start, end]: each strategy's decided sides (one per
    (market, timestamp) decision), then with `references` always-long and buy-and-hold.
    A strategy in `schedules` exits by its own rules over time instead of `cfg`'s."""
    schedules = schedules or {}
    market = np.asarray(market)
    timestamp = pd.DatetimeIndex(timestamp)
    names = [*sides, *(REFERENCES if references else ())]
    out: dict[str, dict[str, BacktestResult]] = {name: {} for name in names}
    for symbol, frame in candles.items():
        period = period_candles(frame, start, end)
        mine = market == symbol
        for name, side in sides.items():
            series = decision_series(period, timestamp[mine], np.asarray(side)[mine])
            out[name][symbol] = run_backtest(period, series, cfg, schedule=schedules.get(name))
        if references:
            out["always_long"][symbol] = run_backtest(
                period, always_long_decisions(len(period)), cfg
            )
            out["buy_and_hold"][symbol] = buy_and_hold(period, cfg)
    return out
