"""Is a probability of 0.7 right 70 % of the time, and what does each threshold buy?

The 0.65 confidence threshold is a choice between precision and coverage; these tables make
that choice visible, with day-block bootstrap intervals, on validation and on test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.stats import day_block_bootstrap


def confidence(p_up: np.ndarray) -> np.ndarray:
    """max(p, 1 − p): how sure the model is of the side it picks."""
    p_up = np.asarray(p_up, dtype="float64")
    return np.maximum(p_up, 1.0 - p_up)


def accuracy(p_up: np.ndarray, y: np.ndarray) -> float:
    """Share of windows whose leaning side (up at P(up) ≥ 0.5) matches the label; NaN if none."""
    p_up, y = np.asarray(p_up), np.asarray(y)
    return float(np.mean((p_up >= 0.5) == (y == 1.0))) if len(p_up) else float("nan")


def reliability_table(p_up: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per probability bin: count, mean predicted P(up), observed share of ups."""
    p_up, y = np.asarray(p_up, dtype="float64"), np.asarray(y, dtype="float64")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_up, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "count": n,
                "mean_predicted": float(p_up[inside].mean()) if n else float("nan"),
                "observed_up": float(y[inside].mean()) if n else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(p_up: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed − predicted| over the reliability bins."""
    table = reliability_table(p_up, y, bins)
    used = table[table["count"] > 0]
    if used.empty:
        return float("nan")
    gap = (used["observed_up"] - used["mean_predicted"]).abs()
    return float((gap * used["count"]).sum() / used["count"].sum())


def precision_coverage(
    p_up: np.ndarray,
    y: np.ndarray,
    timestamps: pd.Series | np.ndarray,
    thresholds: np.ndarray | None = None,
    draws: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """For each confidence threshold: coverage, signals, precision (side right) and its 95 % CI.

    Precision is the share of confident signals whose side matches the label; coverage the
    share of all windows that pass the threshold.
    """
    if thresholds is None:
        thresholds = np.round(np.arange(0.50, 0.81, 0.01), 2)
    p_up, y = np.asarray(p_up, dtype="float64"), np.asarray(y, dtype="float64")
    stamps = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True).reset_index(drop=True)
    conf = confidence(p_up)
    right = ((p_up >= 0.5) == (y == 1.0)).astype("float64")
    rows = []
    for threshold in thresholds:
        keep = conf >= threshold
        n = int(keep.sum())
        low, high = (
            day_block_bootstrap(stamps[keep], right[keep], draws=draws, seed=seed)
            if n
            else (float("nan"), float("nan"))
        )
        rows.append(
            {
                "threshold": float(threshold),
                "coverage": n / len(conf) if len(conf) else float("nan"),
                "signals": n,
                "precision": float(right[keep].mean()) if n else float("nan"),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows)


def threshold_for_coverage(p_up: np.ndarray, coverage: float) -> float:
    """The confidence threshold that keeps about `coverage` of the windows (fit on validation)."""
    if not 0 < coverage <= 1:
        raise ValueError("coverage must lie in (0, 1]")
    conf = confidence(p_up)
    if conf.size == 0:
        raise ValueError("no windows to fit a threshold on")
    return float(np.quantile(conf, 1.0 - coverage, method="higher"))
