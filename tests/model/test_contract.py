"""The model contract: fit (scaler on training rows, then the LSTM), load, predict a segment."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.model.contract import (
    ModelMismatchError,
    fit_model,
    load_for_inference,
    segment_windows,
)
from pipeline.model.dataset import make_windows
from pipeline.model.scaler import Scaler
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.model.training import TrainConfig, train_model
from pipeline.signals.inference import decide_many
from tests.helpers.model import feature_columns, synthetic_frame

WINDOW = 8
CFG = TrainConfig(window=WINDOW, hidden=8, batch_size=64, max_epochs=2, num_threads=1)


@pytest.fixture(scope="module")
def fitted():
    frame = synthetic_frame(markets=2, rows=24 * 12, features=4, signal=0.5, seed=3)
    windows = make_windows(frame, feature_columns(frame), WINDOW, "1h")
    splits = chronological_split(
        windows, SplitConfig("2021-01-01", "2021-01-08", "2021-01-12", window=WINDOW)
    )
    return frame, splits, fit_model(splits.train, splits.validation, CFG)


def record_of(fitted, **config) -> SimpleNamespace:
    """What a model store record carries, for a fitted model."""
    return SimpleNamespace(
        id=5,
        config={**fitted.result.config, "threshold": 0.6, "horizon": 1, **config},
        features=list(fitted.scaler.features),
        scaler=fitted.scaler.to_dict(),
        checkpoint=checkpoint_bytes(fitted.result.state_dict),
    )


def test_fit_is_the_scaler_on_training_rows_then_training(fitted) -> None:
    _, splits, model = fitted
    scaler = Scaler.fit(splits.train)
    assert np.array_equal(model.scaler.center, scaler.center)
    assert np.array_equal(model.scaler.scale, scaler.scale)
    alone = train_model(splits.train, splits.validation, CFG, scaler)
    assert all(torch.equal(alone.state_dict[k], v) for k, v in model.result.state_dict.items())


def test_a_loaded_model_predicts_as_the_fitted_one_and_as_decisions(fitted) -> None:
    _, splits, model = fitted
    loaded = load_for_inference(record_of(model), [*model.scaler.features, "extra"])
    assert (loaded.model_id, loaded.threshold, loaded.window) == (5, 0.6, WINDOW)
    p = loaded.predict(splits.validation)
    assert np.array_equal(p, model.predict(splits.validation))
    p_decided, _ = decide_many(model.network, model.scaler.apply(splits.validation).X)
    assert np.array_equal(p, p_decided)  # the decisions' one-window forward pass, bit for bit
    batched = model.validation_probabilities(splits.validation)
    assert np.allclose(p, batched, atol=1e-6)


def test_loading_refuses_what_does_not_fit(fitted) -> None:
    _, _, model = fitted
    features = list(model.scaler.features)
    with pytest.raises(ModelMismatchError, match="needs features the data lacks"):
        load_for_inference(record_of(model), features[:-1])
    with pytest.raises(ModelMismatchError, match="weights do not fit"):
        load_for_inference(record_of(model, hidden=16), features)


def test_a_segment_keeps_unlabelled_windows_of_its_markets_and_period(fitted) -> None:
    frame, _, _ = fitted
    frame = frame.copy()
    frame.loc[frame.index[-1], "label"] = np.nan  # the newest candle's label is unknown
    start = pd.Timestamp("2021-01-10", tz="UTC")
    end = frame["timestamp"].max()
    features = feature_columns(frame)
    segment = segment_windows(frame, features, WINDOW, "1h", start, end, markets=["M1USDT"])
    assert len(segment) == 24 * 3
    assert set(segment.market) == {"M1USDT"}
    assert segment.timestamp.min() == start and segment.timestamp.max() == end
    assert np.isnan(segment.y[-1])
    both = segment_windows(frame, features, WINDOW, "1h", start, end)
    assert len(both) == 2 * len(segment)
