"""Reliability, calibration error, precision versus coverage, and a coverage-fitted threshold."""

import numpy as np
import pandas as pd
import pytest

from pipeline.signals.calibration import (
    confidence,
    expected_calibration_error,
    precision_coverage,
    reliability_table,
    threshold_for_coverage,
)


def calibrated(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, n)
    y = (rng.uniform(size=n) < p).astype(float)
    times = pd.Series(pd.date_range("2022-01-01", periods=n, freq="h", tz="UTC"))
    return p, y, times


def test_a_calibrated_model_has_small_ece_and_a_shifted_one_does_not() -> None:
    p, y, _ = calibrated()
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(np.clip(p + 0.15, 0, 1), y) > 0.12
    table = reliability_table(p, y)
    assert table["count"].sum() == len(p)
    used = table[table["count"] > 100]
    assert np.allclose(used["observed_up"], used["mean_predicted"], atol=0.04)


def test_precision_rises_with_confidence_and_coverage_falls() -> None:
    p, y, times = calibrated()
    curve = precision_coverage(p, y, times, thresholds=np.array([0.5, 0.6, 0.7]), draws=200)
    assert curve["coverage"].is_monotonic_decreasing
    assert curve["precision"].iloc[-1] > curve["precision"].iloc[0]
    assert (curve["ci_low"] <= curve["precision"]).all()
    assert (curve["precision"] <= curve["ci_high"]).all()
    assert curve.loc[0, "coverage"] == 1.0


def test_coverage_target_sets_the_threshold() -> None:
    p, _, _ = calibrated()
    threshold = threshold_for_coverage(p, 0.35)
    assert (confidence(p) >= threshold).mean() == pytest.approx(0.35, abs=0.005)
    with pytest.raises(ValueError):
        threshold_for_coverage(p, 0)
