"""Scores on a panel: every strategy's score per decision candle and market, as one array.

A model's P(up) becomes the score 2p − 1 (its distance from ½ is its conviction), normalised
by a scale fitted on validation (`ScoreScale`: the 90th percentile of |score|), so that a
full-conviction score is ±1 whatever the model's calibration: the portfolio layer sizes
positions by it and selects by a threshold on it. The blend is the mean of the LSTM's and
gradient boosting's normalised scores. Rule scores (trend, cross-sectional momentum) come
from the candles alone (`pipeline.portfolio.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SCALE_QUANTILE = 0.9


def score_from_probability(p_up: np.ndarray) -> np.ndarray:
    """2p − 1: positive for up, its size the model's conviction."""
    return 2.0 * np.asarray(p_up, dtype=np.float64) - 1.0


@dataclass(frozen=True)
class ScoreScale:
    """|score| at the `SCALE_QUANTILE` of the validation scores: what counts as full
    conviction. Fitted on validation only; a record keeps it so live scores alike."""

    scale: float

    @classmethod
    def fit(cls, scores: np.ndarray) -> ScoreScale:
        size = np.abs(np.asarray(scores, dtype=np.float64))
        size = size[np.isfinite(size)]
        if size.size == 0:
            raise ValueError("no finite validation scores to fit a score scale on")
        scale = float(np.quantile(size, SCALE_QUANTILE))
        return cls(scale if scale > 0 else 1.0)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(scores, dtype=np.float64) / self.scale, -1.0, 1.0)


def blend(*scores: np.ndarray) -> np.ndarray:
    """The mean of normalised scores (NaN where any is missing)."""
    return np.mean(np.stack(scores), axis=0)


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
