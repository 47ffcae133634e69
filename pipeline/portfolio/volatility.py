"""Annualised volatility known at each candle's close: the sizing input of the portfolio layer.

vol_t = std(ddof=1) of the last `window` one-candle log returns ending at t's close, × √(candles
a 365-day year), window = round(days × candles a day): 30 for 1d, 180 for 4h, 720 for 1h at 30
days. No look-ahead: vol_t reads closes up to t only. NaN until the window is full, and for any
window holding a return across a missing candle (timestamps not one step apart) or a close that
is not a positive finite number. Each window is computed on its own (two passes, not a running
sum that carries rounding forward), so vol_t is the same bits however much history follows it.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.timeframes import DAY_MS, timeframe_ms


def window_candles(timeframe: str, days: float) -> int:
    """Log returns per volatility window: round(days × candles per day)."""
    return round(days * DAY_MS / timeframe_ms(timeframe))


def _log_returns(close: np.ndarray, timestamps_ms: np.ndarray, step: int) -> np.ndarray:
    """r[t] = log(close[t] / close[t − 1]) where t − 1 is the candle just before; else NaN."""
    out = np.full(close.shape, np.nan)
    if close.shape[0] < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(close[1:] / close[:-1])
    contiguous = np.diff(timestamps_ms) == step
    positive = (close[1:] > 0) & (close[:-1] > 0) & np.isfinite(close[1:]) & np.isfinite(close[:-1])
    out[1:] = np.where(contiguous[:, None] & positive & np.isfinite(r), r, np.nan)
    return out


def _rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """std(ddof=1) of each full window of returns `r[T, M]` ending at t; NaN before, and where a
    window holds a NaN.

    Two passes of elementwise adds in a fixed order over the window's offsets: each value's
    arithmetic depends on its own window only, never on the array's length or a chunking.
    """
    out = np.full(r.shape, np.nan)
    n = r.shape[0] - window + 1
    if n <= 0:
        return out
    total = np.zeros((n, r.shape[1]))
    for k in range(window):
        total += r[k : k + n]
    mean = total / window
    squares = np.zeros((n, r.shape[1]))
    for k in range(window):
        dev = r[k : k + n] - mean
        squares += dev * dev
    out[window - 1 :] = np.sqrt(squares / (window - 1))
    return out


def annual_volatility(
    close: np.ndarray, timestamps_ms: np.ndarray, timeframe: str, days: float = 30
) -> np.ndarray:
    """Annualised volatility at each candle, known at its close: `close[T]` or `close[T, M]`
    (markets on one shared candle grid `timestamps_ms[T]`, NaN where a market has no candle)."""
    c = np.asarray(close, dtype=np.float64)
    if c.ndim not in (1, 2):
        raise ValueError(f"close must be [T] or [T, M], got shape {c.shape}")
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    if ts.shape != c.shape[:1]:
        raise ValueError(f"timestamps of shape {ts.shape} for closes of shape {c.shape}")
    step = timeframe_ms(timeframe)
    window = window_candles(timeframe, days)
    if window < 2:
        raise ValueError(
            f"{days} days of {timeframe} candles is {window} return(s); a std needs at least 2"
        )
    panel = c if c.ndim == 2 else c[:, None]
    r = _log_returns(panel, ts, step)
    per_year = np.sqrt(365.0 * DAY_MS / step)
    return (_rolling_std(r, window) * per_year).reshape(c.shape)
