"""Class balance comes from training labels only; sampling is seeded."""

import numpy as np
import pytest
import torch

from pipeline.model.batches import WindowBatches, make_loader, training_loader
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.sampling import class_weights, sample_weights
from pipeline.model.scaler import Scaler
from pipeline.model.training import TrainConfig, train_model
from tests.helpers.model import feature_columns, synthetic_frame


def windows(seed: int = 0) -> WindowSet:
    frame = synthetic_frame(markets=1, rows=400, features=3, seed=seed)
    return make_windows(frame, feature_columns(frame), 4, "1h")


def relabelled(ws: WindowSet, y: np.ndarray) -> WindowSet:
    return WindowSet(
        ws.X, y.astype(np.float32), ws.market, ws.timestamp, ws.forward_return, ws.features
    )


def test_class_weights_balance_the_classes() -> None:
    y = np.array([1, 1, 1, 0], dtype=np.float32)
    down, up = class_weights(y)
    assert (down, up) == (2.0, 4 / 6)
    w = sample_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    with pytest.raises(ValueError, match="both classes"):
        class_weights(np.ones(3))


def test_weighted_sampler_balances_and_is_seeded() -> None:
    ws = windows()
    y = (np.arange(len(ws)) % 5 == 0).astype(np.float32)  # 20 % up
    ws = relabelled(ws, y)

    def epoch(seed: int) -> torch.Tensor:
        loader = training_loader(ws, 64, "cpu", seed, "sampler")
        return torch.cat([yb for _, yb in loader])

    drawn = epoch(0)
    assert len(drawn) == len(ws)
    assert abs(float(drawn.mean()) - 0.5) < 0.08  # balanced, where the data has 20 % up
    assert torch.equal(drawn, epoch(0)) and not torch.equal(drawn, epoch(1))
    shuffled = torch.cat([yb for _, yb in training_loader(ws, 64, "cpu", 0, "loss")])
    assert float(shuffled.mean()) == pytest.approx(float(y.mean()))  # every window once


def test_batches_are_the_windows() -> None:
    ws = windows()
    x, y = next(iter(make_loader(WindowBatches(ws), 32)))
    np.testing.assert_array_equal(x.numpy(), ws.X[np.arange(32)])
    np.testing.assert_array_equal(y.numpy(), ws.y[:32])


def test_training_weights_ignore_validation_labels() -> None:
    ws = windows()
    train, val = ws.take(np.arange(200)), ws.take(np.arange(210, len(ws)))
    scaler = Scaler.fit(train)
    cfg = TrainConfig(window=4, hidden=4, max_epochs=1, batch_size=64, num_threads=1)
    base = train_model(train, val, cfg, scaler).class_weights
    all_up = relabelled(val, np.ones(len(val)))
    assert train_model(train, all_up, cfg, scaler).class_weights == base
    assert base == class_weights(train.y)
    y = train.y.copy()
    y[:40] = 1.0
    assert train_model(relabelled(train, y), val, cfg, scaler).class_weights != base
