"""Baselines that share the LSTM's features, training rows, labels, filter, exits and costs.

They see one row of features (the window's last), not the window: if the LSTM cannot beat a
logistic regression or gradient boosting on the same inputs, its sequence modelling is not
earning its keep. Class balance is handled as for the LSTM, from training labels only. The
momentum rule fits nothing: its side is the sign of the last 24 h return.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.model.contract import window_values
from pipeline.model.dataset import WindowSet

# scikit-learn is imported where it is used: every Dagster run process imports this module
# through the code location, and the live runs never fit a baseline (its import is slow).


def fit_logistic(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced", random_state=seed),
    )
    return model.fit(x, y)


def fit_gbm(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=200,
        l2_regularization=1.0,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )
    return model.fit(x, y)


BASELINES = {"logistic": fit_logistic, "gbm": fit_gbm}


def probability_up(model, x: np.ndarray) -> np.ndarray:
    return model.predict_proba(x)[:, 1].astype(np.float64)


def _last_rows(windows: WindowSet) -> np.ndarray:
    """Each window's last row of (unscaled) features: what a baseline sees."""
    return windows.X.values[windows.X.ends]


def fit_baselines(train: WindowSet, seed: int) -> dict[str, object]:
    """Baseline name → the model fitted on `train`'s windows (their last rows) with `seed`
    (the run's configured seed, in every path that fits them)."""
    rows = _last_rows(train)
    return {name: fit(rows, train.y, seed) for name, fit in BASELINES.items()}


def predict_baselines(models: dict[str, object], windows: WindowSet) -> dict[str, np.ndarray]:
    """Baseline name → P(up) on `windows`."""
    rows = _last_rows(windows)
    return {name: probability_up(model, rows) for name, model in models.items()}


def baseline_probabilities(
    train: WindowSet, windows: WindowSet, seed: int
) -> dict[str, np.ndarray]:
    """Baseline name → P(up) on `windows`, each fitted on `train` with `seed`."""
    return predict_baselines(fit_baselines(train, seed), windows)


def momentum_probability(data: pd.DataFrame, windows: WindowSet) -> np.ndarray:
    """The momentum rule as a P(up): long after a rising 24 h, short after a falling one.

    P(up) = logistic(ret_24 / scale): its side is the sign of the 24 h log return, and its
    confidence grows with that move measured in the label's scale σ × √T, so the same
    rank and expected-value filters apply to it as to the models.
    """
    move = window_values(data, windows, "ret_24") / window_values(data, windows, "scale")
    return 1.0 / (1.0 + np.exp(-np.nan_to_num(move, nan=0.0)))
