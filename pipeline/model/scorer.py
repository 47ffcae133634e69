"""A portfolio model's scorer, loaded from its record: the LSTM or gradient boosting.

The walk-forward's written rule may name either as the shipped default (the brief's LSTM, or
the boosting baseline that shares its features and windows). A record says which in
`config["scorer"]`: an LSTM record's checkpoint is the network's state dict (read tensors
only), a boosting record's is its trees (`pipeline.model.trees`, numeric arrays only). Both
give P(up) per window the same way in the backtest of a stored model and in live inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.model.contract import LoadedModel, ModelMismatchError, StoredModel
from pipeline.model.contract import load_for_inference as load_lstm
from pipeline.model.dataset import WindowSet
from pipeline.model.trees import TreeEnsemble

SCORER_KINDS = ("lstm", "gbm")


def scorer_kind(config: dict[str, Any]) -> str:
    kind = config.get("scorer", "lstm")
    if kind not in SCORER_KINDS:
        raise ModelMismatchError(f"unknown scorer {kind!r}; known: {', '.join(SCORER_KINDS)}")
    return kind


@dataclass
class LoadedScorer:
    kind: str
    model_id: int | None
    features: list[str]
    window: int  # candles a decision reads (boosting: 1, the window's last row)
    lstm: LoadedModel | None = None
    trees: TreeEnsemble | None = None

    def predict(self, windows: WindowSet) -> np.ndarray:
        """P(up) of each (unscaled) window; the LSTM one window at a time, as live decides."""
        if self.lstm is not None:
            return self.lstm.predict(windows)
        assert self.trees is not None
        return self.trees.predict_proba(windows.X.values[windows.X.ends])


def load_scorer(record: StoredModel, available: list[str]) -> LoadedScorer:
    """The record's scorer, checked against the features offered."""
    kind = scorer_kind(record.config)
    if kind == "lstm":
        lstm = load_lstm(record, available)
        return LoadedScorer(kind, record.id, lstm.features, lstm.window, lstm=lstm)
    missing = [f for f in record.features if f not in available]
    if missing:
        raise ModelMismatchError(
            f"model {record.id} needs features the data lacks: {', '.join(missing[:10])}"
        )
    trees = TreeEnsemble.from_bytes(record.checkpoint)
    if trees.n_features != len(record.features):
        raise ModelMismatchError(
            f"model {record.id}: its trees read {trees.n_features} features, its record "
            f"lists {len(record.features)}"
        )
    return LoadedScorer(kind, record.id, list(record.features), 1, trees=trees)
