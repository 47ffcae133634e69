"""Contiguous runs of candles: features are computed per run, so no recursion bridges a gap."""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def usable_rows(o, h, lo, c, v) -> np.ndarray:
    """Rows whose prices are positive and finite and whose volume is finite and >= 0.

    Candles are validated at ingestion; a bad row that slips through is treated as a missing
    candle (a break in the run) instead of poisoning every later value of a recursion.
    NaN fails every comparison, so it is caught by `> 0` and `>= 0`.
    """
    low_price = np.minimum(np.minimum(o, h), np.minimum(lo, c))
    high_price = np.maximum(np.maximum(o, h), np.maximum(lo, c))
    return (low_price > 0) & (high_price < np.inf) & (v >= 0) & (v < np.inf)


def run_bounds(
    ts: np.ndarray, step_ms: int, usable: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """[start, stop) of each run of consecutive usable candles; refuses unsorted or duplicates."""
    if len(ts) == 0:
        return []
    steps = np.diff(ts)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(f"candle timestamps must strictly increase (row {i + 1}: {ts[i + 1]})")
    if usable is None or usable.all():
        breaks = np.flatnonzero(steps != step_ms) + 1
        edges = [0, *breaks.tolist(), len(ts)]
        return list(pairwise(edges))
    # A run starts at a usable row after a gap or an unusable row, and ends before either.
    joined = np.r_[False, (steps == step_ms) & usable[1:] & usable[:-1]]
    starts = np.flatnonzero(usable & ~joined)
    stops = np.flatnonzero(usable & ~np.r_[joined[1:], False]) + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))
