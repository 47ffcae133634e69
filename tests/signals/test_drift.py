"""Feature and calibration drift: the PSI itself, the per-feature bounds, and the verdict on
the sample's real candles (its own recent week passes, the same week shifted fails)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features.compute import compute_market_features, market_factor_frame
from pipeline.features.registry import feature_names
from pipeline.settings import DEFAULT_TRAIN_END
from pipeline.signals.drift import (
    PSI_FLOOR,
    calibration_drift,
    feature_drift,
    in_window_bound,
    market_drift,
    psi,
)

RNG = np.random.default_rng(3)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    reference = RNG.standard_normal(20_000)
    assert psi(reference, RNG.standard_normal(2_000)) < 0.02
    assert psi(reference, RNG.standard_normal(2_000) + 1.0) > 0.5


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.01, 100), offset=st.floats(-100, 100))
def test_psi_ignores_a_monotone_rescaling_of_both_sides(scale: float, offset: float) -> None:
    reference, recent = RNG.standard_normal(3_000), RNG.standard_normal(300) + 0.3
    assert psi(reference * scale + offset, recent * scale + offset) == pytest.approx(
        psi(reference, recent), abs=1e-9
    )


def test_psi_without_finite_values_is_nan() -> None:
    assert np.isnan(psi(np.array([np.nan]), np.array([1.0])))


def test_a_slow_feature_gets_the_bound_its_own_training_stretches_show() -> None:
    # A random walk: any week of it sits in a few deciles of the whole, so a fixed 0.25
    # would flag it every week; its bound is what its own weeks scored.
    walk = np.cumsum(RNG.standard_normal(5_000))
    assert in_window_bound(walk, 168, PSI_FLOOR) > 2.0
    assert in_window_bound(RNG.standard_normal(5_000), 168, PSI_FLOOR) == PSI_FLOOR


def test_feature_drift_needs_two_reference_windows() -> None:
    frame = pd.DataFrame({"f": RNG.standard_normal(300)})
    with pytest.raises(ValueError, match="two windows"):
        feature_drift(frame, frame.head(200), ["f"])
    with pytest.raises(ValueError, match="rows on both sides"):
        feature_drift(frame, frame.head(0), ["f"])


def test_calibration_is_judged_only_with_enough_resolved_signals() -> None:
    p = RNG.uniform(0.3, 0.7, 400)
    honest = calibration_drift(p, (RNG.uniform(size=400) < p).astype(float), 0.03)
    assert honest.judged and honest.passed
    inverted = calibration_drift(p, (RNG.uniform(size=400) < 1 - p).astype(float), 0.03)
    assert inverted.judged and not inverted.passed
    early = calibration_drift(p[:10], np.ones(10), 0.03)
    assert not early.judged and early.passed and "not judged yet" in early.text()


@pytest.fixture(scope="module")
def sample_features(sample_frames) -> dict[str, pd.DataFrame]:
    factor = market_factor_frame(sample_frames, "1h")
    return {
        market: compute_market_features(frame, "1h", {}, factor=factor)
        for market, frame in sample_frames.items()
    }


def test_on_the_sample_its_own_recent_week_passes_and_the_week_shifted_fails(
    sample_features,
) -> None:
    """The default model's training window (the sample's start to SIGNALS_TRAIN_END's
    default) against the sample's last week, per market; then the same week with every
    feature moved by one training standard deviation."""
    names = feature_names()
    first = pd.Timestamp("2020-10-23", tz="UTC")
    last = pd.Timestamp(DEFAULT_TRAIN_END, tz="UTC")
    for market, features in sample_features.items():
        own = market_drift(features, names, first, last)
        assert own.passed, (market, own.share, own.worst())
        stamps = features["timestamp"]
        reference = features[stamps <= last.value // 1_000_000]
        shifted = features.copy()
        recent = shifted.index[-168:]
        shifted.loc[recent, names] += reference[names].std()
        moved = market_drift(shifted, names, first, last)
        assert not moved.passed, (market, moved.share)
        assert moved.share > 2 * own.share
