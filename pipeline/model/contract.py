"""The model's one contract: fit it, load it for inference, and predict a segment.

Every caller goes through here: the candidate the assets train and judge, each walk-forward
fold, the backtests of a stored model, and the live job. Fitting is always the same two
steps (the scaler on the training rows only, then the seeded LSTM), loading always checks
that the stored features, scaler and weights agree, and a segment's decisions always come
from the same one-window-at-a-time forward pass that live inference runs, so what was
evaluated is what trades.

torch is imported by the functions that run a network, not by this module: a gradient-boosting
scorer, the code location and the helpers that only read windows never load it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from pipeline.features.labels import LabelRule
from pipeline.model.checkpoint import read_checkpoint
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.ensemble import Ensemble, member_mean
from pipeline.model.operating import OperatingPoint
from pipeline.model.scaler import Scaler

if TYPE_CHECKING:
    import torch

    from pipeline.model.config import TrainConfig
    from pipeline.model.lstm import LSTMClassifier
    from pipeline.model.training import TrainResult

MODEL_NAME = "lstm"  # the name its records carry in the model store
DEFAULT_THRESHOLD = 0.65  # confidence a model decides with when its record names none


class ModelMismatchError(ValueError):
    """A stored model cannot run on the inputs offered (features or shape differ)."""


# -- fit -----------------------------------------------------------------------------------
@dataclass
class FittedModel:
    """A freshly trained model: its training record and the scaler fitted before it."""

    result: TrainResult
    scaler: Scaler

    @cached_property
    def network(self) -> LSTMClassifier:
        """The best epoch's weights, on the CPU, in eval mode."""
        return self.result.model()

    def validation_probabilities(self, windows: WindowSet) -> np.ndarray:
        """P(up) in batches, as training scored validation: the figures a fit is judged by
        (decisions use `predict`, whose last bits may differ)."""
        from pipeline.model.training import predict_proba

        return predict_proba(self.network, self.scaler.apply(windows).X).astype(np.float64)

    def predict(self, windows: WindowSet) -> np.ndarray:
        return predict(self.network, self.scaler, windows)


def fit_model(
    train: WindowSet,
    validation: WindowSet,
    cfg: TrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FittedModel:
    """The scaler on the training windows' rows, then the LSTM (early-stopped on
    `validation`); nothing outside these windows is read."""
    from pipeline.model.training import train_model

    scaler = Scaler.fit(train)
    return FittedModel(train_model(train, validation, cfg, scaler, on_epoch), scaler)


# -- load ----------------------------------------------------------------------------------
class StoredMember(Protocol):
    """One network of a stored ensemble (pipeline.store.models.MemberCheckpoint)."""

    seed: int
    checkpoint: bytes


class StoredModel(Protocol):
    """What loading reads from a model store record (pipeline.store.models.ModelRecord):
    one network's `checkpoint`, or an ensemble's `members` (then `checkpoint` is empty)."""

    id: int | None
    config: dict[str, Any]
    features: list[str]
    scaler: dict[str, Any]
    checkpoint: bytes
    members: Sequence[StoredMember]


@dataclass
class LoadedModel:
    """A stored model ready to decide: network (or an ensemble of them, deciding by their
    mean probability), scaler, features, its label rule (which is also how its trades
    exit), its operating point and id."""

    model_id: int | None
    network: LSTMClassifier | Ensemble
    scaler: Scaler
    features: list[str]
    window: int
    label: LabelRule
    operating: OperatingPoint

    @property
    def threshold(self) -> float:
        return self.operating.threshold

    @property
    def horizon(self) -> int:
        return self.label.horizon

    def predict(self, windows: WindowSet) -> np.ndarray:
        return predict(self.network, self.scaler, windows)

    def decide(self, data: pd.DataFrame, windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
        """(P(up), side) per window, through the operating point (`data`: labelled frame)."""
        p_up = self.predict(windows)
        return p_up, self.operating.sides(p_up, window_scale(data, windows))


def window_scale(data: pd.DataFrame, windows: WindowSet) -> np.ndarray:
    """Each window's scale σ × √T at its last candle, from the labelled frame's `scale`."""
    return window_values(data, windows, "scale")


def window_values(data: pd.DataFrame, windows: WindowSet, column: str) -> np.ndarray:
    """`data[column]` at each window's last candle (NaN where the frame has no such row)."""
    values = pd.Series(
        data[column].to_numpy(dtype=np.float64),
        index=pd.MultiIndex.from_arrays([data["market"], data["timestamp"]]),
    )
    at = pd.MultiIndex.from_arrays(
        [np.asarray(windows.market), pd.DatetimeIndex(windows.timestamp)]
    )
    return values.reindex(at).to_numpy()


def load_for_inference(record: StoredModel, available: list[str]) -> LoadedModel:
    """Rebuild the network from its record; refuse clearly if its features are not offered."""
    missing = [f for f in record.features if f not in available]
    if missing:
        raise ModelMismatchError(
            f"model {record.id} needs features the data lacks: {', '.join(missing[:10])}"
            + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        )
    scaler = Scaler.from_dict(record.scaler)
    if list(scaler.features) != record.features:
        raise ModelMismatchError(f"model {record.id}: its scaler and feature list disagree")
    members = list(getattr(record, "members", None) or [])
    if members:
        network: LSTMClassifier | Ensemble = Ensemble(
            tuple(_network(record, m.checkpoint, f"member {i}") for i, m in enumerate(members)),
            tuple(int(m.seed) for m in members),
        ).eval()
    else:
        network = _network(record, record.checkpoint, "").eval()
    cfg = record.config
    return LoadedModel(
        model_id=record.id,
        network=network,
        scaler=scaler,
        features=list(record.features),
        window=int(cfg["window"]),
        label=stored_label(cfg),
        operating=stored_operating(cfg),
    )


def _network(record: StoredModel, checkpoint: bytes, which: str) -> LSTMClassifier:
    """One network of the record from its checkpoint bytes (`which`: the member, if any)."""
    from pipeline.model.lstm import LSTMClassifier

    cfg = record.config
    network = LSTMClassifier(len(record.features), cfg["hidden"], cfg["layers"], cfg["dropout"])
    state = read_checkpoint(checkpoint, record.id)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        where = f" ({which})" if which else ""
        raise ModelMismatchError(
            f"model {record.id}{where}: weights do not fit its config: {err}"
        ) from err
    return network


def stored_label(config: dict[str, Any]) -> LabelRule:
    """The label rule a record was trained with (older records: a horizon, time exits)."""
    return LabelRule.from_json(config.get("label") or {"horizon": config.get("horizon", 1)})


def stored_operating(config: dict[str, Any]) -> OperatingPoint:
    """The operating point a record decides with (older records: a bare threshold)."""
    if "operating" in config:
        return OperatingPoint.from_json(config["operating"])
    return OperatingPoint(threshold=float(config.get("threshold", DEFAULT_THRESHOLD)))


# -- predict -------------------------------------------------------------------------------
def segment_windows(
    data: pd.DataFrame,
    features: list[str],
    window: int,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    markets: list[str] | tuple[str, ...] | None = None,
) -> WindowSet:
    """Windows whose decision time lies in [start, end] (of `markets`, default every one); a
    label may be unknown: a decision never depends on the next candle, and dropping the
    windows whose next candle closed flat would let the future choose which candles trade."""
    windows = make_windows(data, features, window, timeframe, labelled=False)
    keep = (windows.timestamp >= start) & (windows.timestamp <= end)
    if markets is not None:
        keep &= np.isin(windows.market, markets)
    return windows.take(keep)


def predict(network: torch.nn.Module | Ensemble, scaler: Scaler, windows: WindowSet) -> np.ndarray:
    """P(up) of each (unscaled) window, one window at a time as live inference decides."""
    return probabilities(network, scaler.apply(windows).X, batch_size=1)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """One window is too small to share between threads: on one thread it runs faster (see
    bench/inference.py), and the result is the same."""
    import torch

    if count is None or torch.get_num_threads() == count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def probabilities(
    model: torch.nn.Module | Ensemble, scaled: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """P(up) for scaled windows [n, L, F], one fixed-size batch at a time (the only forward
    pass decisions use, so single and batch decisions agree when batch_size is 1). An
    ensemble's is the mean of its members' (`member_mean`, as the evaluation's ensemble)."""
    if isinstance(model, Ensemble):
        return member_mean([probabilities(m, scaled, batch_size) for m in model.members])
    import torch

    model.eval()
    out = np.empty(len(scaled), dtype=np.float64)
    with torch.no_grad(), torch_threads(1 if batch_size == 1 else None):
        for start in range(0, len(scaled), batch_size):
            chunk = np.ascontiguousarray(scaled[start : start + batch_size], dtype=np.float32)
            logits = model(torch.from_numpy(chunk))
            out[start : start + len(chunk)] = torch.sigmoid(logits).double().numpy()
    return out
