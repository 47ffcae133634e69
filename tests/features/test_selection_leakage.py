"""On real features: candles after the training end date cannot move the selection."""

import numpy as np
import pandas as pd

from pipeline.exchange.markets import symbol_from_id
from pipeline.features.compute import compute_features
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.features.registry import feature_names
from pipeline.features.selection import SelectionConfig, select_features

END = 1640995200000  # 2022-01-01
CFG = SelectionConfig(train_end="2021-08-31", n_select=20, folds=2, repeats=1, max_iter=20)


def _select(candles: dict[str, pd.DataFrame]):
    data = attach_labels(
        compute_features(candles, "1h"), candles, "1h", LabelRule(horizon=CFG.horizon)
    )
    return select_features(data, feature_names(), CFG)


def test_changing_candles_after_train_end_leaves_the_selection_alone(sample_frames) -> None:
    candles = {
        symbol_from_id(m): f[f["timestamp"] < END].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    }
    before = _select(candles)

    cut = pd.Timestamp(CFG.train_end, tz="UTC").value // 1_000_000
    rng = np.random.default_rng(5)
    changed = {}
    for symbol, frame in candles.items():
        frame = frame.copy()
        later = frame["timestamp"] > cut
        scale = np.exp(np.cumsum(rng.normal(0, 0.01, int(later.sum()))))
        for col in ("open", "high", "low", "close"):
            frame.loc[later, col] *= scale
        frame.loc[later, "volume"] *= rng.uniform(0.5, 2.0, int(later.sum()))
        changed[symbol] = frame
    after = _select(changed)

    assert after.selected == before.selected
    pd.testing.assert_frame_equal(
        after.table.drop(columns=["relevance"]).set_index("feature").sort_index(),
        before.table.drop(columns=["relevance"]).set_index("feature").sort_index(),
    )
    np.testing.assert_array_equal(after.table["relevance"], before.table["relevance"])
