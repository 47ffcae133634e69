"""Has the model's world moved? Feature drift (population stability index against the
training window) and calibration drift (resolved live signals against validation).

PSI = Σ (recent − reference) · ln(recent / reference) over the reference's deciles: 0 for
the same distribution; the credit-risk practice it comes from calls 0.25 significant.
Deciles make it invariant to any monotone rescaling of a feature.

A fixed 0.25 is wrong for hourly features, though: a week of a 168-hour volatility is
nearly one value, so a week of candles from inside the training window itself scores PSI
far above 0.25 on the slow features. Each feature's bound is therefore what the training
window itself shows: the largest PSI of any of its non-overlapping windows of the recent
window's length (and at least `floor`). A feature drifted when the recent window is
further from the training distribution than any stretch of the training window was; the
check fails when more than `max_share` of the features drifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.signals.calibration import expected_calibration_error

PSI_FLOOR = 0.25  # no feature's bound is below "significant shift"
MAX_DRIFTED_SHARE = 0.3  # the check fails when more than this share of features drifted
RECENT_CANDLES = 168  # a week of 1h candles
PSI_BINS = 10
_EMPTY = 1e-4  # an empty bin counts as this share (the log needs it)
CALIBRATION_BOUND = 0.05  # live ECE may exceed validation's by this much
MIN_RESOLVED = 50  # fewer resolved signals: calibration is not judged yet


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return np.maximum(counts / max(values.size, 1), _EMPTY)


def _psi_shares(reference: np.ndarray, recent: np.ndarray) -> float:
    return float(np.sum((recent - reference) * np.log(recent / reference)))


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `recent` against `reference` (finite values only),
    on the reference's quantile bins; NaN when either side has no finite value."""
    reference = reference[np.isfinite(reference)]
    recent = recent[np.isfinite(recent)]
    if reference.size == 0 or recent.size == 0:
        return float("nan")
    edges = _edges(reference, bins)
    return _psi_shares(_shares(reference, edges), _shares(recent, edges))


def in_window_bound(
    reference: np.ndarray, length: int, floor: float, bins: int = PSI_BINS
) -> float:
    """The largest PSI of any non-overlapping `length`-row stretch of `reference` (in time
    order) against the whole of it, and at least `floor`."""
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return floor
    edges = _edges(finite, bins)
    whole = _shares(finite, edges)
    stretches = [
        _psi_shares(whole, _shares(block[np.isfinite(block)], edges))
        for block in (
            reference[i : i + length] for i in range(0, reference.size - length + 1, length)
        )
        if np.isfinite(block).any()
    ]
    return max([floor, *stretches])


@dataclass(frozen=True)
class FeatureDrift:
    """Each feature's PSI and bound, worst first (by PSI over bound), and the verdict."""

    psi: pd.Series  # feature → PSI
    bounds: pd.Series  # feature → its bound
    max_share: float
    reference_rows: int
    recent_rows: int

    @property
    def drifted(self) -> list[str]:
        return self.psi.index[self.psi > self.bounds].tolist()

    @property
    def share(self) -> float:
        return len(self.drifted) / max(len(self.psi), 1)

    @property
    def passed(self) -> bool:
        return self.share <= self.max_share

    def worst(self, k: int = 5) -> str:
        """The `k` features furthest beyond their bound: name, PSI / bound."""
        ratio = (self.psi / self.bounds).sort_values(ascending=False).head(k)
        return ", ".join(
            f"{name} {self.psi[name]:.2f}/{self.bounds[name]:.2f}" for name in ratio.index
        )


def feature_drift(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    features: Sequence[str],
    floor: float = PSI_FLOOR,
    max_share: float = MAX_DRIFTED_SHARE,
) -> FeatureDrift:
    """PSI of every feature of `recent` against `reference` (time-ordered frames holding the
    columns), each judged against the bound its own training stretches set."""
    if recent.empty or reference.empty:
        raise ValueError(
            f"drift needs rows on both sides: {len(reference)} reference, {len(recent)} recent"
        )
    if len(reference) < 2 * len(recent):
        raise ValueError(
            f"the reference ({len(reference)} rows) must hold at least two windows of the "
            f"recent length ({len(recent)}) to bound the drift"
        )
    values, bounds = {}, {}
    for name in features:
        ref = reference[name].to_numpy(float)
        values[name] = psi(ref, recent[name].to_numpy(float))
        bounds[name] = in_window_bound(ref, len(recent), floor)
    return FeatureDrift(
        pd.Series(values, dtype=float).fillna(0.0),
        pd.Series(bounds, dtype=float),
        max_share,
        len(reference),
        len(recent),
    )


@dataclass(frozen=True)
class CalibrationDrift:
    """Live calibration of resolved signals against the model's validation calibration."""

    resolved: int
    live_ece: float | None
    validation_ece: float
    bound: float
    min_resolved: int

    @property
    def judged(self) -> bool:
        return self.resolved >= self.min_resolved

    @property
    def passed(self) -> bool:
        """Not judged yet (too few resolved signals) counts as passed; the text says so."""
        return not self.judged or (self.live_ece or 0.0) <= self.validation_ece + self.bound

    def text(self) -> str:
        if not self.judged:
            return (
                f"{self.resolved} resolved signals, fewer than {self.min_resolved}: "
                "calibration not judged yet"
            )
        return (
            f"live ECE {self.live_ece:.3f} over {self.resolved} resolved signals vs validation "
            f"{self.validation_ece:.3f} (bound +{self.bound:.2f})"
        )


def calibration_drift(
    probability_up: np.ndarray,
    went_up: np.ndarray,
    validation_ece: float,
    bound: float = CALIBRATION_BOUND,
    min_resolved: int = MIN_RESOLVED,
) -> CalibrationDrift:
    """ECE of resolved live probabilities against whether the market went up."""
    n = len(probability_up)
    live = expected_calibration_error(probability_up, went_up) if n >= min_resolved else None
    return CalibrationDrift(n, live, float(validation_ece), bound, min_resolved)


def market_drift(
    features: pd.DataFrame,
    names: Sequence[str],
    train_first: pd.Timestamp,
    train_last: pd.Timestamp,
    recent_candles: int = RECENT_CANDLES,
    floor: float = PSI_FLOOR,
    max_share: float = MAX_DRIFTED_SHARE,
) -> FeatureDrift:
    """One market's feature drift: its newest `recent_candles` rows of `features` (the live
    job's frame: `timestamp` in epoch ms, then the features) against its rows in the model's
    training window [train_first, train_last]."""
    stamps = features["timestamp"].to_numpy(dtype="int64")
    first, last = train_first.value // 1_000_000, train_last.value // 1_000_000
    reference = features[(stamps >= first) & (stamps <= last)]
    recent = features[stamps > last].tail(recent_candles)
    return feature_drift(reference, recent, names, floor, max_share)
