"""Several markets' replays as one portfolio: equal capital in each, trades pooled.

Each market is a sub-account holding 1/N of the capital from the start, never rebalanced, so
the portfolio's equity is the mean of the markets' equity curves. Curves are aligned on the
union of their timestamps: before a market's first candle its capital sits idle (1.0), after
its last (or across a gap) its equity is carried forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.engine import BacktestResult
from pipeline.backtest.metrics import equity_metrics, trade_metrics


def _timeframe(results: Mapping[str, BacktestResult]) -> str:
    frames = {r.config.timeframe for r in results.values()}
    if len(frames) != 1:
        raise ValueError(f"cannot pool replays of different timeframes: {sorted(frames)}")
    return frames.pop()


def pool_equity(results: Mapping[str, BacktestResult]) -> pd.Series:
    """Equal-weight portfolio equity, starting at 1.0 (see module docstring)."""
    if not results:
        raise ValueError("nothing to pool")
    _timeframe(results)
    curves = pd.concat({m: r.equity for m, r in results.items()}, axis=1).sort_index()
    return curves.ffill().fillna(1.0).mean(axis=1).rename("equity")


def pool_metrics(results: Mapping[str, BacktestResult]) -> dict[str, Any]:
    """Portfolio figures from the pooled equity; trade figures from all markets' trades."""
    equity = pool_equity(results)
    cfg = next(iter(results.values())).config
    ms = equity.index.asi8 // 1_000_000
    span = int(ms[-1] - ms[0]) + cfg.step_ms
    candles = np.array([len(r.position) for r in results.values()], dtype=np.float64)
    net = np.concatenate([r.rows[:, 7] for r in results.values()])
    metrics: dict[str, Any] = {"markets": len(results)}
    metrics.update(trade_metrics(net))
    metrics["coverage"] = float(
        np.dot([r.metrics["coverage"] for r in results.values()], candles) / candles.sum()
    )
    metrics.update(equity_metrics(equity.to_numpy(), span, cfg.periods_per_year))
    metrics["exposure"] = float(
        np.dot([r.metrics["exposure"] for r in results.values()], candles) / candles.sum()
    )
    return metrics
