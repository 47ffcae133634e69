"""Cross-market features: each market against the equal-weight market factor.

Everything lives on a regular time grid, with NaN where a market has no candle, so markets
align on open time and a missing candle is missing, never interpolated. The factor at t is
the mean 1-candle log return of the markets that have one at t (a candle at t and at t-1):
a market that is absent (not yet listed, or in a gap) drops out of the mean instead of
blanking the factor for every other market; the factor is NaN only when no market has a return.
It uses candles at t and before only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.features.rolling import Moments, Prefix, diff, safe_ratio

CROSS_NAMES = ("mkt_ret_1", "mkt_ret_24", "mkt_corr_72", "mkt_beta_168", "rel_ret_24")


@dataclass(frozen=True)
class MarketFactor:
    t0: int  # open time of grid slot 0, ms
    step: int  # base candle length, ms
    values: np.ndarray  # factor per grid slot
    markets: np.ndarray | None = None  # how many markets the mean took, per grid slot

    def windows(self) -> dict[str, np.ndarray]:
        """The factor's own window statistics, shared by every market (per grid slot)."""
        moments = Moments(self.values)
        mean72, std72 = moments.mean_std(72)
        mean168, std168 = moments.mean_std(168)
        return {
            "sum24": moments.first.sum(24),
            "mean72": mean72,
            "std72": std72,
            "mean168": mean168,
            "var168": std168 * std168,
        }


def _grid_log_close(ts: np.ndarray, close: np.ndarray, t0: int, size: int, step: int):
    offset = ts - t0
    if (offset % step).any():
        raise ValueError("candle open times must lie on the base timeframe's grid")
    grid = np.full(size, np.nan)
    grid[offset // step] = np.log(close)
    return grid


def market_factor(frames: Iterable[pd.DataFrame], step: int) -> MarketFactor:
    """Equal-weight mean 1-candle log return of the markets present at each grid slot."""
    series = [
        (f["timestamp"].to_numpy(dtype="int64"), f["close"].to_numpy(dtype="float64"))
        for f in frames
        if len(f)
    ]
    if not series:
        return MarketFactor(0, step, np.empty(0), np.empty(0, dtype="int64"))
    t0 = min(int(ts[0]) for ts, _ in series)
    size = (max(int(ts[-1]) for ts, _ in series) - t0) // step + 1
    total, count = np.zeros(size), np.zeros(size)
    for ts, close in series:
        ret = diff(_grid_log_close(ts, close, t0, size, step), 1)
        present = ~np.isnan(ret)
        total[present] += ret[present]
        count += present
    return MarketFactor(t0, step, safe_ratio(total, count), count.astype("int64"))


def cross_features(
    ts: np.ndarray, close: np.ndarray, factor: MarketFactor, windows: dict[str, np.ndarray]
) -> np.ndarray:
    """(rows, 5) cross-market values in CROSS_NAMES order for one market's candles.

    `windows` is `factor.windows()`, computed once for all markets.
    """
    out = np.full((len(ts), len(CROSS_NAMES)), np.nan, order="F")
    if len(ts) == 0:
        return out
    step = factor.step
    size = int(ts[-1] - ts[0]) // step + 1
    own = diff(_grid_log_close(ts, close, int(ts[0]), size, step), 1)
    # This market's grid is a contiguous stretch [lo, hi) of the factor's grid.
    first = (int(ts[0]) - factor.t0) // step
    lo, hi = max(first, 0), min(first + size, len(factor.values))

    def on_grid(values: np.ndarray) -> np.ndarray:
        placed = np.full(size, np.nan)
        if hi > lo:
            placed[lo - first : hi - first] = values[lo:hi]
        return placed

    mkt = on_grid(factor.values)
    stats = {key: on_grid(values) for key, values in windows.items()}
    own_moments, cross = Moments(own), Prefix(own * mkt)
    mean72, std72 = own_moments.mean_std(72)
    cov72 = cross.mean(72) - mean72 * stats["mean72"]
    cov168 = cross.mean(168) - own_moments.first.mean(168) * stats["mean168"]
    with np.errstate(invalid="ignore"):
        corr = safe_ratio(cov72, std72 * stats["std72"])
    cols = (
        mkt,
        stats["sum24"],
        corr,
        safe_ratio(cov168, stats["var168"]),
        own_moments.first.sum(24) - stats["sum24"],
    )
    gapless = size == len(ts)
    rows = None if gapless else (ts - ts[0]) // step
    for j, col in enumerate(cols):
        out[:, j] = col if gapless else col[rows]
    return out
