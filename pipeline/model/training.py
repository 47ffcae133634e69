"""Training loop: Adam, early stopping on validation loss, and a stop on the validation gap.

Per epoch: one shuffled pass over the training windows, then train accuracy measured in
EVAL mode (no dropout) on a fixed, evenly spaced subsample of the training windows (at most
`train_eval_max`), so train and validation accuracy are measured the same way and the gap
is not inflated or hidden by dropout and by weights moving during the epoch. Training stops
and is flagged as soon as train − validation accuracy exceeds `gap_bound`; in every case the
weights of the epoch with the lowest validation loss are restored.

Determinism: `seed_everything`, deterministic algorithms (CPU), seeded sampler generators;
the global torch settings changed for a run are restored afterwards.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from pipeline.model.batches import WindowBatches, make_loader, training_loader
from pipeline.model.config import TrainConfig
from pipeline.model.dataset import WindowArray, WindowSet
from pipeline.model.lstm import LSTMClassifier, count_parameters
from pipeline.model.sampling import class_weights
from pipeline.model.scaler import Scaler

STOP_REASONS = ("early_stopping", "gap_exceeded", "max_epochs")


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]  # best epoch's weights, on the CPU
    epochs: list[dict[str, float]]  # per-epoch metrics
    stopped: str  # one of STOP_REASONS
    gap_flagged: bool
    best_epoch: int  # 1-based
    seed: int
    n_parameters: int
    n_features: int
    config: dict[str, object]
    class_weights: tuple[float, float]  # (down, up) applied in the loss
    device: str

    @property
    def best(self) -> dict[str, float]:
        return self.epochs[self.best_epoch - 1]

    def model(self) -> LSTMClassifier:
        """The trained model (best weights), on the CPU, in eval mode."""
        model = build_model(TrainConfig(**self.config), self.n_features)
        model.load_state_dict(self.state_dict)
        return model.eval()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def deterministic_torch(device: torch.device, num_threads: int | None = None) -> Iterator[None]:
    """Deterministic kernels (and a thread count) for the duration of a run, then restored."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_num_threads(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        # NaN-filling every torch.empty is a debugging aid that cost ~10 % of the epoch;
        # results of kernels that write their whole output do not depend on it.
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.set_num_threads(saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
        torch.utils.deterministic.fill_uninitialized_memory = saved[4]


def build_model(cfg: TrainConfig, n_features: int) -> LSTMClassifier:
    return LSTMClassifier(n_features, cfg.hidden, cfg.layers, cfg.dropout)


def _as_tensor(X, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)


@torch.no_grad()
def predict_proba(
    model: nn.Module, X: np.ndarray | WindowArray | torch.Tensor, batch: int = 4096
) -> np.ndarray:
    """P(up) for SCALED windows X [n, L, F]; eval mode, no grad, batch by batch."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(X), batch):
            chunk = X[start : start + batch]
            x = chunk.to(device) if isinstance(chunk, torch.Tensor) else _as_tensor(chunk, device)
            out.append(torch.sigmoid(model(x)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def weighted_loss(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted binary cross-entropy (weights from training labels)."""
    per_window = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (per_window * torch.where(y > 0.5, weights[1], weights[0])).mean()


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: WindowBatches, weights: torch.Tensor, batch: int
) -> tuple[float, float]:
    """(class-weighted loss, accuracy) in eval mode."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in make_loader(batches, batch):
        logits = model(x)
        loss_sum += float(weighted_loss(logits, y, weights)) * len(y)
        correct += int(((logits > 0).float() == y).sum())
        n += len(y)
    return loss_sum / n, correct / n


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    weights: torch.Tensor,
    grad_clip: float | None,
) -> float:
    """One pass in train mode; the mean window loss (running, with dropout).

    Batch losses stay on the device until the end: no sync and no extra kernel per batch.
    """
    model.train()
    losses, sizes = [], []
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = weighted_loss(model(x), y, weights)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        losses.append(loss.detach())
        sizes.append(len(y))
    per_batch = torch.stack(losses).double().cpu().numpy()
    return float(np.dot(per_batch, sizes) / sum(sizes))


def _probe(train: WindowSet, limit: int) -> WindowSet:
    """A fixed, evenly spaced subsample of the training windows (deterministic)."""
    if len(train) <= limit:
        return train
    return train.take(np.unique(np.linspace(0, len(train) - 1, limit).astype(np.int64)))


def _check(train: WindowSet, val: WindowSet, cfg: TrainConfig, scaler: Scaler) -> None:
    if len(train) == 0 or len(val) == 0:
        raise ValueError("training and validation windows must both be non-empty")
    for name, part in (("training", train), ("validation", val)):
        if part.window != cfg.window:
            raise ValueError(f"{name} windows have {part.window} candles, config {cfg.window}")
        if tuple(part.features) != scaler.features:
            raise ValueError(f"{name} windows' features differ from the scaler's")


def train_model(
    train: WindowSet,
    val: WindowSet,
    cfg: TrainConfig,
    scaler: Scaler,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train on unscaled windows (`scaler`, fitted on training rows, is applied here)."""
    _check(train, val, cfg, scaler)
    device = resolve_device(cfg.device)
    n_features = len(scaler.features)
    # From TRAINING labels only; with the sampler the batches are balanced already.
    loss_weights = class_weights(train.y) if cfg.balance == "loss" else (1.0, 1.0)
    with deterministic_torch(device, cfg.num_threads):
        seed_everything(cfg.seed)
        train_s, val_s = scaler.apply(train), scaler.apply(val)
        model = build_model(cfg, n_features).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        weights = torch.tensor(loss_weights, dtype=torch.float32, device=device)
        loader = training_loader(train_s, cfg.batch_size, device, cfg.seed, cfg.balance)
        probe = WindowBatches(_probe(train_s, cfg.train_eval_max), device)
        val_batches = WindowBatches(val_s, device)

        history: list[dict[str, float]] = []
        best_loss, best_epoch, best_state = float("inf"), 0, None
        stopped, since_best = "max_epochs", 0
        for epoch in range(1, cfg.max_epochs + 1):
            start = time.perf_counter()
            train_loss = train_epoch(model, loader, optimizer, weights, cfg.grad_clip)
            trained = time.perf_counter()
            _, train_acc = evaluate(model, probe, weights, cfg.eval_batch)
            val_loss, val_acc = evaluate(model, val_batches, weights, cfg.eval_batch)
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "gap": train_acc - val_acc,
                "seconds": time.perf_counter() - start,
                "train_seconds": trained - start,
            }
            history.append(metrics)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise FloatingPointError(f"training diverged at epoch {epoch}: {metrics}")
            if on_epoch is not None:
                on_epoch(metrics)
            if val_loss < best_loss:
                best_loss, best_epoch, since_best = val_loss, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
            if metrics["gap"] > cfg.gap_bound:
                stopped = "gap_exceeded"
                break
            if since_best >= cfg.patience:
                stopped = "early_stopping"
                break

    return TrainResult(
        state_dict=best_state,
        epochs=history,
        stopped=stopped,
        gap_flagged=stopped == "gap_exceeded",
        best_epoch=best_epoch,
        seed=cfg.seed,
        n_parameters=count_parameters(model),
        n_features=n_features,
        config=asdict(cfg),
        class_weights=loss_weights,
        device=str(device),
    )
