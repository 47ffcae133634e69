"""The scaler sees training rows only, resists outliers, and survives a JSON round trip."""

import json

import numpy as np
import pandas as pd

from pipeline.model.dataset import make_windows
from pipeline.model.scaler import Scaler
from pipeline.model.splits import SplitConfig, chronological_split
from tests.helpers.model import feature_columns, synthetic_frame

CFG = SplitConfig("2021-01-01", "2021-01-06", "2021-01-09", window=8)


def fitted(frame: pd.DataFrame) -> tuple[Scaler, Scaler]:
    """(scaler fitted on the training split, scaler fitted on every window)."""
    ws = make_windows(frame, feature_columns(frame), CFG.window, "1h")
    return Scaler.fit(chronological_split(ws, CFG).train), Scaler.fit(ws)


def test_validation_rows_cannot_reach_the_scaler() -> None:
    frame = synthetic_frame(markets=2, rows=24 * 9, features=3, seed=4)
    clean, _ = fitted(frame)
    poisoned = frame.copy()
    later = poisoned["timestamp"] >= pd.Timestamp("2021-01-06", tz="UTC")  # after train_end
    poisoned.loc[later, ["f0", "f1", "f2"]] = 1e6
    train_only, every_window = fitted(poisoned)
    np.testing.assert_array_equal(train_only.center, clean.center)
    np.testing.assert_array_equal(train_only.scale, clean.scale)
    assert (every_window.scale > 1e4).any()  # the same check catches a leaking fit


def test_fitted_on_the_rows_of_training_windows() -> None:
    frame = synthetic_frame(markets=1, rows=100, features=2, seed=5)
    ws = make_windows(frame, ["f0", "f1"], 10, "1h")
    train = ws.take(np.arange(20))  # windows ending at rows 9..28: rows 0..28
    mask = train.X.row_mask()
    assert mask.sum() == 29 and mask[:29].all()
    expected = np.median(frame[["f0", "f1"]].to_numpy(np.float32)[:29], axis=0)
    np.testing.assert_allclose(Scaler.fit(train).center, expected, rtol=1e-6)


def test_robust_clipped_and_serialisable() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(3.0, 2.0, size=(5000, 3))
    rows[:, 2] = 1.0  # a constant feature: no IQR, no std
    rows[0, 0] = 1e9  # one crash candle
    scaler = Scaler.fit_rows(rows, ("a", "b", "c"))
    np.testing.assert_allclose(scaler.center[:2], 3.0, atol=0.1)
    np.testing.assert_allclose(scaler.scale[:2], 2.0, rtol=0.1)
    assert scaler.scale[2] == 1.0
    out = scaler.transform(rows)
    assert out.dtype == np.float32 and np.abs(out).max() == 5.0 and np.isfinite(out).all()
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again.transform(rows), out)
    assert again.features == ("a", "b", "c") and again.clip == 5.0
