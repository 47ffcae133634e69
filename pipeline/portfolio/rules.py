"""Scores that fit nothing, from candles alone: the baselines a model must beat.

- `trend_scores`: the daily trend rule (multi-lookback time-series momentum): per market the
  mean over L of sign(log return over L days ÷ (σ · √L)); σ > 0, so each term is the sign of
  the L-day return and the score is one of −1, −⅓, ⅓, 1. Sized by the portfolio layer (inverse
  volatility to its target, capped), it is the rule the issue measured at net Sharpe ≈ 0.65 on
  2022–2023.
- `momentum_scores`: cross-sectional momentum's ranking score, tanh of the 30-day
  risk-adjusted return log(c_t / c_{t−L}) ÷ (σ_candle · √L) (tanh keeps the ranks and the
  layer's [−1, 1]); the layer's top-k selection (market-neutral) goes long the strongest and
  short the weakest.

Both read only closes up to t (known at t's close) and are NaN until their longest lookback
is filled. Rows of `close` are consecutive candles of one grid (the portfolio panel refuses
gaps), so a lookback of L days is L × candles-per-day rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data.timeframes import candles_in

TREND_LOOKBACK_DAYS = (20, 60, 120)
MOMENTUM_DAYS = 30


def _log_return(close: np.ndarray, lag: int) -> np.ndarray:
    """log(c_t / c_{t−lag}) per row (NaN for the first `lag` rows)."""
    out = np.full(close.shape, np.nan)
    if lag < len(close):
        out[lag:] = np.log(close[lag:] / close[:-lag])
    return out


def trend_scores(
    close: np.ndarray, timeframe: str, lookback_days: tuple[float, ...] = TREND_LOOKBACK_DAYS
) -> np.ndarray:
    """The trend rule's score per candle and market ([T, M] or [T]), in [−1, 1]."""
    close = np.asarray(close, dtype=np.float64)
    if not lookback_days:
        raise ValueError("the trend rule needs at least one lookback")
    signs = [np.sign(_log_return(close, candles_in(d, timeframe))) for d in lookback_days]
    return np.mean(signs, axis=0)  # NaN until every lookback is filled


def momentum_scores(close: np.ndarray, timeframe: str, days: float = MOMENTUM_DAYS) -> np.ndarray:
    """tanh of the `days` risk-adjusted return per candle and market: the ranking score."""
    close = np.asarray(close, dtype=np.float64)
    lag = candles_in(days, timeframe)
    one = pd.DataFrame(_log_return(close, 1).reshape(len(close), -1))
    # σ of the last `lag` 1-candle returns, ending at t
    sigma = one.rolling(lag, min_periods=lag).std().to_numpy().reshape(close.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = _log_return(close, lag) / (sigma * np.sqrt(lag))
    return np.where(np.isfinite(z), np.tanh(z), np.nan)
