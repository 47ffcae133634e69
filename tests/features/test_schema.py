"""The feature schema refuses infinities, late NaN and a wrong column order, and says where."""

import numpy as np
import pytest

from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features
from pipeline.features.schema import FeatureValidationError, validate_features


@pytest.fixture(scope="module")
def matrix(sample_frames):
    btc = sample_frames["BTCUSDT"].iloc[:6000]
    return compute_features({symbol_from_id("BTCUSDT"): btc}, "1h")


def test_real_features_pass(matrix) -> None:
    assert validate_features(matrix, "1h").equals(matrix)


def test_infinity_is_refused(matrix) -> None:
    bad = matrix.copy()
    bad.loc[5000, "rsi_14"] = np.inf
    with pytest.raises(FeatureValidationError, match=r"no_infinity.*'rsi_14'"):
        validate_features(bad, "1h")


def test_nan_after_warmup_names_the_feature(matrix) -> None:
    bad = matrix.copy()
    bad.loc[5000, "bb_width_20"] = np.nan
    with pytest.raises(
        FeatureValidationError, match=r"finite_after_warmup.*'bb_width_20' in 1 row"
    ):
        validate_features(bad, "1h")


def test_columns_must_follow_the_registry(matrix) -> None:
    swapped = matrix[["market", "timestamp", *reversed(matrix.columns[2:])]]
    with pytest.raises(FeatureValidationError):
        validate_features(swapped, "1h")
