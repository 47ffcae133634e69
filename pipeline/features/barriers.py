"""Triple-barrier outcomes: what a trade entered at the next open would meet first.

For a decision at candle t the trade enters at the open of t + 1. Its take-profit and stop
sit `width[t]` (a fraction of the entry price, k × σ_t × √T with σ_t a causal volatility
estimate, see `barrier_widths`) above and below the entry; from the entry candle on, each
candle's high and low are checked, for at most `horizon` (T) candles, then the trade leaves at
the next candle's open (what a market order sent at the T-th close gets). A stop is filled at
its level or at a worse open that gapped through it; a take-profit at its level, never better.

The label says which side would have paid after the round-trip `cost`:
- UP: the upper barrier first (a long's take-profit, a short's stop), or at the time limit a
  move above cost + margin;
- DOWN: the mirror image;
- NO_TRADE: both barriers inside one candle (the stop is assumed first, so long and short
  would both have lost), a barrier too close to pay its cost + margin, or a move at the time
  limit inside the dead zone;
- NaN: the outcome is not known yet (the data ends) or a gap lies in the way (a missing
  candle is never bridged).

The backtest must exit by the same rule, so that what a model learns is what is traded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Candles of 1-candle log returns behind σ_t: two days of hours, fixed before any look.
VOL_WINDOW = 48

UP, DOWN, NO_TRADE = 1.0, 0.0, -1.0
# How the trade ended: at a barrier, at both in one candle, or at the time limit.
EXIT_UPPER, EXIT_LOWER, EXIT_BOTH, EXIT_TIME = 1, 2, 3, 4


@dataclass(frozen=True)
class BarrierOutcomes:
    """Per decision candle: the label, how and when the trade ended, and a long's return.

    `exit_offset` counts candles from the entry candle (0: the entry candle itself);
    `long_return` is the gross simple return of a long from the entry price to its exit price
    (the barrier's price at a barrier, or the worse open for a stop; the open after the last
    candle at the time limit; the stop's at both).
    Undefined rows (NaN label) have exit -1, offset -1 and return NaN.
    """

    label: np.ndarray
    exit_kind: np.ndarray
    exit_offset: np.ndarray
    long_return: np.ndarray


def barrier_outcomes(
    timestamps: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    *,
    step_ms: int,
    width: np.ndarray,
    horizon: int,
    cost: float,
    margin: float = 0.0,
) -> BarrierOutcomes:
    """Outcomes for every candle; `width` is per decision candle (a fraction > 0; +inf: no
    barriers, the time limit only; NaN: unknown, no outcome)."""
    if horizon < 1:
        raise ValueError("the time limit must be at least one candle")
    if cost < 0 or margin < 0:
        raise ValueError("cost and margin must be non-negative")
    n = len(timestamps)
    for name, array in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if len(array) != n:
            raise ValueError(f"{name} has {len(array)} rows, the timestamps {n}")
    if len(width) != n:
        raise ValueError(f"width has {len(width)} rows, the timestamps {n}")
    ts = np.asarray(timestamps, dtype="int64")
    label = np.full(n, np.nan)
    kind = np.full(n, -1, dtype=np.int8)
    offset = np.full(n, -1, dtype=np.int16)
    long_return = np.full(n, np.nan)
    # Vectorised over decision candles, one pass per candle of the holding period.
    entry_at = np.arange(n) + 1
    open_now = ~np.isnan(width) & (width > 0) & (entry_at < n)  # +inf: time exits only
    safe_entry = np.minimum(entry_at, n - 1)
    entry = np.where(open_now, open_[safe_entry], np.nan)
    open_now &= ts[safe_entry] == ts + step_ms  # the entry candle itself is there
    upper = entry * (1 + width)
    lower = entry * (1 - width)
    for j in range(horizon):
        at = entry_at + j
        inside = open_now & (at < n)
        safe = np.minimum(at, n - 1)
        inside &= ts[safe] == ts + (j + 1) * step_ms  # no gap between decision and here
        # A trade whose next candle is missing (or not yet closed) has no known outcome.
        open_now &= inside
        hit_up = inside & (high[safe] >= upper)
        hit_down = inside & (low[safe] <= lower)
        both = hit_up & hit_down
        # A long's stop fills at its level or at a worse open; a short's at the mirror.
        long_stop = np.minimum(open_[safe], lower)
        for mask, how, price in (
            (both, EXIT_BOTH, long_stop),
            (hit_up & ~both, EXIT_UPPER, upper),
            (hit_down & ~both, EXIT_LOWER, long_stop),
        ):
            kind[mask] = how
            offset[mask] = j
            long_return[mask] = price[mask] / entry[mask] - 1
        open_now &= ~(hit_up | hit_down)
        if j == horizon - 1:  # still open after T candles: out at the next open, if it exists
            after = entry_at + horizon
            safe_after = np.minimum(after, n - 1)
            open_now &= (after < n) & (ts[safe_after] == ts + (horizon + 1) * step_ms)
            kind[open_now] = EXIT_TIME
            offset[open_now] = j
            long_return[open_now] = open_[safe_after][open_now] / entry[open_now] - 1
    paid = cost + margin
    label[kind == EXIT_BOTH] = NO_TRADE
    for how, side in ((EXIT_UPPER, UP), (EXIT_LOWER, DOWN)):
        mask = kind == how
        label[mask] = np.where(width[mask] > paid, side, NO_TRADE)
    timed = kind == EXIT_TIME
    label[timed] = np.where(
        long_return[timed] > paid, UP, np.where(long_return[timed] < -paid, DOWN, NO_TRADE)
    )
    return BarrierOutcomes(label, kind, offset, long_return)


def _window_std(values: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation of each full trailing window (NaN before the first, or where
    a window holds a NaN). Not a running update (pandas' rolling std carries rounding from
    every earlier window): σ_t depends on t's window only."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = sliding_window_view(values, window).std(axis=1, ddof=1)
    return out


def barrier_widths(
    timestamps: np.ndarray,
    close: np.ndarray,
    *,
    step_ms: int,
    k: float | None,
    horizon: int,
    vol_window: int = VOL_WINDOW,
) -> np.ndarray:
    """Per decision candle, the barrier distance k × σ_t × √T as a fraction of the price.

    σ_t is the standard deviation of the last `vol_window` 1-candle log returns up to t's
    close (a return across a gap is missing, and a window with one missing is NaN: no
    barrier, no label). `k=None` means no barriers (time exits only): +inf everywhere.
    Each σ_t is computed from its own window alone, so live, which reads only the last
    `vol_window` + 1 closes, places its exits bit-equal to a backtest over years of candles.
    """
    n = len(close)
    if k is None:
        return np.full(n, np.inf)
    if k <= 0:
        raise ValueError(f"the barrier width k must be positive, got {k}")
    ts = np.asarray(timestamps, dtype="int64")
    returns = np.full(n, np.nan)
    if n > 1:
        step = np.diff(ts) == step_ms
        returns[1:] = np.where(step, np.diff(np.log(close)), np.nan)
    sigma = _window_std(returns, vol_window)
    # k × (σ√T), in that order: the labels' k × scale is then bit-equal to the exits' width.
    return k * (sigma * np.sqrt(horizon))
