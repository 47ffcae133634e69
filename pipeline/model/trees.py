"""Gradient boosting as a model the store can keep: the trees as plain arrays, no pickle.

A fitted `HistGradientBoostingClassifier` (the boosting scorer) is exported to its trees'
node arrays and baseline, written as an `.npz` of numeric arrays (read back with
`allow_pickle=False`: bytes from the store can carry no code), and predicted by the same rule
scikit-learn's predictor follows (a NaN goes where the split sends missing values, else
`x ≤ threshold` goes left; leaf values summed tree by tree onto the baseline in float64, then
the logistic function), so P(up) is bit for bit scikit-learn's (a test holds it to that).
Explanations are path attributions (Saabas): along each tree's path the change of the node
value is credited to the split's feature, so the credits and the baseline sum to the logit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Every tree's nodes, concatenated (`offsets[t]` is tree t's first node), and the
    baseline logit."""

    feature: np.ndarray  # int64: the split's feature (leaves: unused)
    threshold: np.ndarray  # float64
    missing_left: np.ndarray  # bool
    left: np.ndarray  # int64, relative to the tree's first node
    right: np.ndarray  # int64
    leaf: np.ndarray  # bool
    value: np.ndarray  # float64: a leaf's value (internal nodes: the mean, for credits)
    offsets: np.ndarray  # int64 [trees + 1]
    baseline: float
    n_features: int

    @classmethod
    def from_sklearn(cls, model) -> TreeEnsemble:
        """Export a fitted binary `HistGradientBoostingClassifier` (or the last step of a
        pipeline ending in one). Categorical splits are refused: the boosting scorer has
        none."""
        model = getattr(model, "steps", [(None, model)])[-1][1]
        if model.n_trees_per_iteration_ != 1:
            raise ValueError("only binary classifiers (one tree per iteration) are exported")
        trees = [predictors[0].nodes for predictors in model._predictors]
        if any(t["is_categorical"].any() for t in trees):
            raise ValueError("categorical splits are not exported")
        nodes = np.concatenate(trees)
        offsets = np.cumsum([0, *(len(t) for t in trees)]).astype(np.int64)
        return cls(
            feature=nodes["feature_idx"].astype(np.int64),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            left=nodes["left"].astype(np.int64),
            right=nodes["right"].astype(np.int64),
            leaf=nodes["is_leaf"].astype(bool),
            value=nodes["value"].astype(np.float64),
            offsets=offsets,
            baseline=float(model._baseline_prediction.ravel()[0]),
            n_features=int(model.n_features_in_),
        )

    def _arrays(self) -> tuple:
        return (
            self.feature,
            self.threshold,
            self.missing_left,
            self.left,
            self.right,
            self.leaf,
            self.value,
            self.offsets,
        )

    def _rows(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got {x.shape}")
        return x

    def logit(self, x: np.ndarray) -> np.ndarray:
        from pipeline.model.tree_kernels import raw  # numba: loaded when trees predict

        return raw(self._rows(x), *self._arrays(), self.baseline)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(up) per row, as scikit-learn's `predict_proba(x)[:, 1]`."""
        from scipy.special import expit

        return expit(self.logit(x))

    def credits(self, row: np.ndarray) -> np.ndarray:
        """Each feature's push on the logit of one row (they sum to logit − baseline)."""
        from pipeline.model.tree_kernels import credits

        return credits(self._rows(np.asarray(row)[None, :])[0], *self._arrays(), self.n_features)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            baseline=np.array([self.baseline]),
            n_features=np.array([self.n_features]),
            **{name: getattr(self, name) for name in _ARRAYS},
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> TreeEnsemble:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return cls(
                **{name: arrays[name] for name in _ARRAYS},
                baseline=float(arrays["baseline"][0]),
                n_features=int(arrays["n_features"][0]),
            )


_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value", "offsets")
