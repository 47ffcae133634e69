"""Scores on a panel: every strategy's score per decision candle and market, as one array
(scores themselves: `pipeline.portfolio.scores`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_panel(
    market: np.ndarray,
    timestamp: pd.DatetimeIndex | np.ndarray,
    values: np.ndarray,
    markets: list[str],
    panel_ms: np.ndarray,
) -> np.ndarray:
    """Long (market, timestamp, value) rows → a [T, M] array on the panel's candles (NaN
    where a market has no row). Rows whose time or market is not on the panel are refused:
    they would be decisions the backtest silently drops."""
    ms = pd.DatetimeIndex(timestamp).as_unit("ms").asi8
    rows = np.searchsorted(panel_ms, ms)
    inside = (rows < len(panel_ms)) & (panel_ms[np.minimum(rows, len(panel_ms) - 1)] == ms)
    column = {m: j for j, m in enumerate(markets)}
    cols = np.array([column.get(m, -1) for m in np.asarray(market)], dtype=np.int64)
    if not inside.all() or (cols < 0).any():
        raise ValueError("scores for candles or markets that are not on the panel")
    out = np.full((len(panel_ms), len(markets)), np.nan)
    out[rows, cols] = np.asarray(values, dtype=np.float64)
    return out
