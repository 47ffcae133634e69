"""Training: deterministic, stops on the validation gap, restores the best epoch's weights."""

import numpy as np
import pytest
import torch

from pipeline.model.batches import WindowBatches
from pipeline.model.dataset import make_windows
from pipeline.model.scaler import Scaler
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.model.training import TrainConfig, evaluate, train_model
from tests.helpers.model import feature_columns, synthetic_frame

WINDOW = 8


def splits(rows: int, signal: float, train_end: str, val_end: str):
    frame = synthetic_frame(markets=2, rows=rows, features=4, signal=signal, seed=7)
    ws = make_windows(frame, feature_columns(frame), WINDOW, "1h")
    parts = chronological_split(ws, SplitConfig("2021-01-01", train_end, val_end, window=WINDOW))
    return parts.train, parts.validation, Scaler.fit(parts.train)


def small(**changes) -> TrainConfig:
    base = {"window": WINDOW, "hidden": 8, "batch_size": 64, "max_epochs": 3, "num_threads": 1}
    return TrainConfig(**{**base, **changes})


def noise_fit(**changes):
    """~180 training windows of pure-noise labels and a model big enough to memorise them."""
    train, val, scaler = splits(24 * 9, 0.0, "2021-01-05", "2021-01-09")
    cfg = small(hidden=48, dropout=0.0, lr=1e-2, batch_size=32, max_epochs=150, **changes)
    return train, val, scaler, train_model(train, val, cfg, scaler)


def test_same_seed_same_weights() -> None:
    train, val, scaler = splits(24 * 12, 0.5, "2021-01-08", "2021-01-12")
    first = train_model(train, val, small(dropout=0.3), scaler)
    second = train_model(train, val, small(dropout=0.3), scaler)
    other = train_model(train, val, small(dropout=0.3, seed=1), scaler)
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert [e["val_loss"] for e in first.epochs] == [e["val_loss"] for e in second.epochs]
    assert not torch.equal(first.state_dict["head.weight"], other.state_dict["head.weight"])
    assert first.stopped == "max_epochs" and len(first.epochs) == 3
    assert first.n_parameters == 4 * 8 * (4 + 8) + 8 * 8 + 8 + 1
    assert not torch.are_deterministic_algorithms_enabled()  # global setting restored


def test_memorising_noise_stops_on_the_gap() -> None:
    *_, result = noise_fit(patience=150)  # only the gap may stop it before max_epochs
    assert result.stopped == "gap_exceeded" and result.gap_flagged
    last = result.epochs[-1]
    assert last["gap"] > 0.15 and last["train_accuracy"] > last["val_accuracy"]
    assert all(e["gap"] <= 0.15 for e in result.epochs[:-1])
    assert len(result.epochs) < 150


def test_early_stopping_restores_the_best_epoch() -> None:
    _, val, scaler, result = noise_fit(gap_bound=1.0, patience=3)
    assert result.stopped == "early_stopping" and not result.gap_flagged
    losses = [e["val_loss"] for e in result.epochs]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(result.epochs) == result.best_epoch + 3
    device = torch.device(result.device)  # the same kernels as during training
    weights = torch.tensor(result.class_weights, dtype=torch.float32, device=device)
    batches = WindowBatches(scaler.apply(val), device)
    val_loss, val_acc = evaluate(result.model().to(device), batches, weights, 4096)
    assert val_loss == pytest.approx(losses[result.best_epoch - 1], rel=1e-6)
    assert val_loss < losses[-1]  # not the last epoch's weights
    assert val_acc == result.best["val_accuracy"]


def test_mismatched_inputs_are_refused() -> None:
    train, val, scaler = splits(24 * 9, 0.0, "2021-01-05", "2021-01-09")
    with pytest.raises(ValueError, match="candles"):
        train_model(train, val, small(window=16), scaler)
    with pytest.raises(ValueError, match="non-empty"):
        train_model(train, val.take(np.zeros(len(val), bool)), small(), scaler)
    with pytest.raises(ValueError, match="balance"):
        train_model(train, val, small(balance="oversample"), scaler)
