"""Trailing-window statistics, vectorised: each value uses the window ending at its own row.

Window sums come from one running sum per series (`Prefix`), shared by every window length:
a running sum is the one costly pass (`np.cumsum` is sequential), the windows are then one
subtraction each. Being strictly sequential, a prefix of the input gives exactly a prefix of
the output, so the no-look-ahead property test can demand equality, not closeness. A window
holding a NaN gives NaN, so a gap marked as NaN is never bridged.
"""

from __future__ import annotations

import numpy as np


class Prefix:
    """Running sum of a series: the sum over any trailing window in one subtraction."""

    def __init__(self, x: np.ndarray):
        self.size = len(x)
        missing = np.isnan(x)
        # Leading NaNs (a return's first row) are common and cheap: no count series needed.
        self.lead = int(np.argmin(missing)) if missing.any() else 0
        if missing.all():
            self.lead = self.size
        self.count = None
        if missing[self.lead :].any():
            self.count = np.concatenate(([0], np.cumsum(missing)))
        self.total = np.empty(self.size + 1)
        self.total[0] = 0.0
        np.cumsum(
            np.where(missing, 0.0, x) if self.lead or self.count is not None else x,
            out=self.total[1:],
        )

    def sum(self, n: int) -> np.ndarray:
        """Sum of the n values ending at each row; NaN before n values exist or if one is NaN."""
        first = self.lead + n - 1
        if first >= self.size:
            return np.full(self.size, np.nan)
        out = np.empty(self.size)
        out[:first] = np.nan
        np.subtract(
            self.total[first + 1 :], self.total[first + 1 - n : self.size + 1 - n], out=out[first:]
        )
        if self.count is not None:
            holes = self.count[first + 1 :] != self.count[first + 1 - n : self.size + 1 - n]
            out[first:][holes] = np.nan
        return out

    def mean(self, n: int) -> np.ndarray:
        out = self.sum(n)
        out /= n
        return out


class Moments:
    """Running first and second moments of x: windowed means and population std devs."""

    def __init__(self, x: np.ndarray):
        self.first, self.second = Prefix(x), Prefix(x * x)

    def mean_std(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        mean = self.first.mean(n)
        var = self.second.mean(n)
        var -= mean * mean
        np.maximum(var, 0.0, out=var)  # rounding can leave a tiny negative for a flat window
        return mean, np.sqrt(var, out=var)

    def std(self, n: int) -> np.ndarray:
        return self.mean_std(n)[1]


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted k rows later (row t holds x[t-k]); the first k rows NaN."""
    out = np.empty(x.shape)
    out[:k] = np.nan
    out[k:] = x[: max(len(x) - k, 0)]
    return out


def diff(x: np.ndarray, k: int) -> np.ndarray:
    """x[t] - x[t-k]; the first k rows NaN."""
    out = np.empty(x.shape)
    out[:k] = np.nan
    np.subtract(x[k:], x[: max(len(x) - k, 0)], out=out[k:])
    return out


def rolling_median_low(x: np.ndarray, n: int) -> np.ndarray:
    """Lower median of the n values ending at each row (the (n+1)//2-th smallest).

    One rank filter instead of two for an even window, and always a value that occurred.
    x must be finite. Equal to pandas' `rolling(n).quantile(0.5, interpolation="lower")`.
    """
    out = np.full(len(x), np.nan)
    if n > len(x):
        return out
    try:  # scipy (a scikit-learn dependency) has an O(n log w) trailing rank filter
        from scipy import ndimage  # imported here: the code location loads without scipy
    except ImportError:  # pragma: no cover - pandas' skiplist gives the same values, slower
        import pandas as pd

        return pd.Series(x).rolling(n).quantile(0.5, interpolation="lower").to_numpy()
    ranked = ndimage.rank_filter(x, (n - 1) // 2, size=n, origin=(n - 1) // 2, mode="nearest")
    out[n - 1 :] = ranked[n - 1 :]
    return out


def safe_ratio(num: np.ndarray, den: np.ndarray, where_zero: float = np.nan) -> np.ndarray:
    """num / den, with `where_zero` (NaN unless a neutral value is meaningful) where den == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.divide(num, den)
    zero = den == 0
    if zero.any():
        out[zero] = where_zero
    return out


def safe_log(x: np.ndarray) -> np.ndarray:
    """Natural log; NaN (not -inf) for zero, e.g. a candle without volume."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(x)
    bad = ~(x > 0)
    if bad.any():
        out[bad] = np.nan
    return out
