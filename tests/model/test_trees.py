"""Gradient boosting kept as plain arrays: P(up) bit for bit scikit-learn's, no pickle."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pipeline.evaluation.baselines import fit_gbm
from pipeline.model.trees import TreeEnsemble


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 12)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan  # missing values take the split's missing side
    y = (x[:, 0] + 0.5 * np.nan_to_num(x[:, 1]) + rng.normal(size=len(x)) > 0).astype(float)
    return fit_gbm(x, y), x


def test_probabilities_are_scikit_learns_bit_for_bit(fitted) -> None:
    model, x = fitted
    trees = TreeEnsemble.from_sklearn(model)
    np.testing.assert_array_equal(trees.predict_proba(x), model.predict_proba(x)[:, 1])
    again = TreeEnsemble.from_bytes(trees.to_bytes())
    np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x)[:, 1])


def test_the_stored_bytes_hold_no_pickle(fitted) -> None:
    trees = TreeEnsemble.from_sklearn(fitted[0])
    with np.load(io.BytesIO(trees.to_bytes()), allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_path_credits_and_the_baseline_sum_to_the_logit(fitted) -> None:
    model, x = fitted
    trees = TreeEnsemble.from_sklearn(model)
    for row in x[:5]:
        credits = trees.credits(row)
        assert credits.sum() + trees.baseline == pytest.approx(trees.logit(row[None, :])[0])
    assert abs(trees.credits(x[0])[0]) > 0  # the informative feature is credited


def test_rows_of_the_wrong_width_are_refused(fitted) -> None:
    trees = TreeEnsemble.from_sklearn(fitted[0])
    with pytest.raises(ValueError, match="expected rows of 12 features"):
        trees.predict_proba(np.zeros((2, 11)))
