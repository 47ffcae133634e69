"""Confidence intervals for figures over time, where neighbouring rows are not independent."""

from __future__ import annotations

import numpy as np
import pandas as pd


def day_block_bootstrap(
    timestamps: pd.Series | np.ndarray,
    values: np.ndarray,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Interval of the mean of `values`, resampling whole UTC days.

    Rows of one day (and, pooled, of several markets at one time) move together; resampling
    rows one by one would understate the uncertainty.
    """
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return float("nan"), float("nan")
    days = pd.to_datetime(pd.Series(timestamps), utc=True).dt.floor("D").to_numpy()
    _, day_index = np.unique(days, return_inverse=True)
    sums = np.bincount(day_index, weights=values)
    counts = np.bincount(day_index).astype("float64")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(draws, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
