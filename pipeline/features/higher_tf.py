"""Higher-timeframe features and their join onto base rows by CLOSE time.

A 4h candle opened at 08:00 closes at 12:00; the base row opened at 11:00 (closing at 12:00)
is the first that may use it. Each base row takes the higher candle whose close is the latest
grid close not after its own close, and only that one: if that candle is missing (a gap in
the higher series), the row gets NaN rather than a stale value.
"""

from __future__ import annotations

import numpy as np
import talib

from pipeline.features.registry import HTF_PARTS
from pipeline.features.rolling import Moments, diff
from pipeline.features.segments import run_bounds


def bucket_closes(
    ts: np.ndarray, close: np.ndarray, base_ms: int, htf_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Open times and closes of the complete higher candles in base candles (sorted, unique).

    The same candles `pipeline.data.aggregate.aggregate` builds, reduced to the one column
    these features read: a bucket counts only when every one of its base candles exists.
    """
    bucket = ts // htf_ms * htf_ms
    if len(ts) == 0:
        return bucket, close[:0]
    last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])
    counts = np.diff(np.r_[-1, last])
    complete = counts == htf_ms // base_ms
    return bucket[last][complete], close[last][complete]


def htf_values(ts: np.ndarray, close: np.ndarray, htf_ms: int) -> np.ndarray:
    """(candles + 1, 5) values in HTF_PARTS order, each run of candles on its own.

    Column-major, with a last all-NaN row that `join_rows` points at for "no such candle".
    """
    out = np.full((len(ts) + 1, len(HTF_PARTS)), np.nan, order="F")
    warm = [w for w, _ in HTF_PARTS.values()]
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(close) & (close > 0)
    close = np.ascontiguousarray(close, dtype="float64")
    for start, stop in run_bounds(ts, htf_ms, usable):
        seg = close[start:stop]
        r1 = diff(np.log(seg), 1)
        _, _, hist = talib.MACD(seg, 12, 26, 9)
        cols = (
            r1,
            talib.RSI(seg, 14),
            Moments(r1).std(20),
            seg / talib.EMA(seg, 20) - 1.0,
            hist / seg,
        )
        for j, col in enumerate(cols):
            out[start:stop, j] = col
            out[start : min(start + warm[j], stop), j] = np.nan
    return out


def join_rows(htf_ts: np.ndarray, htf_ms: int, base_ts: np.ndarray, base_ms: int) -> np.ndarray:
    """Per base row, the higher candle closing at the last grid close <= the row's close.

    Returns row numbers into `htf_values`' output; `len(htf_ts)` (its NaN row) where that
    candle does not exist.
    """
    if ((htf_ts - htf_ts[:1]) % htf_ms).any():
        raise ValueError("higher-timeframe candles must open on their timeframe's grid")
    missing = len(htf_ts)
    rows = np.full(len(base_ts), missing)
    if len(htf_ts) == 0 or len(base_ts) == 0:
        return rows
    # Slot k of the higher grid is the candle closing at htf_ts[0] + (k + 1) * htf_ms.
    slots = (htf_ts - htf_ts[0]) // htf_ms
    row_of_slot = np.full(int(slots[-1]) + 1, missing)
    row_of_slot[slots] = np.arange(len(htf_ts))
    slot = (base_ts + base_ms - htf_ts[0]) // htf_ms - 1
    inside = (slot >= 0) & (slot < len(row_of_slot))
    rows[inside] = row_of_slot[slot[inside]]
    return rows
