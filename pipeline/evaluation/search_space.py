"""What the model search may change, and how a trial's choices become configs.

The space is the issue's: window length, hidden size (kept in the ~25k-parameter class: a
hidden size whose LSTM would exceed `max_parameters` for the selected features is never
sampled), dropout, learning rate, weight decay, the label's time limit and barrier width,
and the operating point's coverage. Everything else (epochs, patience, the gap bound, batch
size, the seed) stays as configured, so a tuned model differs from the untuned one only in
what the study chose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from pipeline.evaluation.operating_choice import COVERAGES, OperatingChoice
from pipeline.features.labels import LabelRule
from pipeline.model.config import TrainConfig

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class SearchSpace:
    windows: tuple[int, ...] = (4, 8, 16, 24)
    hidden: tuple[int, int] = (24, 64)  # step 8; capped by `max_parameters`
    hidden_step: int = 8
    dropout: tuple[float, float] = (0.0, 0.5)
    lr: tuple[float, float] = (3e-4, 3e-3)  # log scale
    weight_decay: tuple[float, float] = (1e-6, 1e-3)  # log scale
    horizons: tuple[int, ...] = (6, 12, 24)
    barrier_k: tuple[float, ...] = (1.0, 1.5, 2.0)
    coverages: tuple[float, ...] = COVERAGES
    max_parameters: int = 30_000

    @property
    def max_window(self) -> int:
        return max(self.windows)

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)


def lstm_parameters(n_features: int, hidden: int, layers: int = 1) -> int:
    """Trainable parameters of `LSTMClassifier` (pipeline.model.lstm), without building it:
    per layer 4h·(in + h) weights and 8h biases, then the head's h + 1."""
    total = 0
    for k in range(layers):
        inputs = n_features if k == 0 else hidden
        total += 4 * hidden * (inputs + hidden) + 8 * hidden
    return total + hidden + 1


@dataclass(frozen=True)
class TrialParams:
    """One point of the space: what a trial (or a frozen best trial) sets."""

    window: int
    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    horizon: int
    barrier_k: float
    coverage: float

    def train(self, base: TrainConfig) -> TrainConfig:
        return replace(
            base,
            window=self.window,
            hidden=self.hidden,
            dropout=self.dropout,
            lr=self.lr,
            weight_decay=self.weight_decay,
        )

    def label(self, base: LabelRule) -> LabelRule:
        return replace(base, horizon=self.horizon, barrier_k=self.barrier_k)

    def operating(self, base: OperatingChoice) -> OperatingChoice:
        """The operating choice at this coverage only (the EV filter still chosen on
        validation, as the untuned model's is)."""
        return replace(base, coverages=(self.coverage,), fixed_threshold=None)

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TrialParams:
        return cls(
            window=int(data["window"]),
            hidden=int(data["hidden"]),
            dropout=float(data["dropout"]),
            lr=float(data["lr"]),
            weight_decay=float(data["weight_decay"]),
            horizon=int(data["horizon"]),
            barrier_k=float(data["barrier_k"]),
            coverage=float(data["coverage"]),
        )


def hidden_choices(space: SearchSpace, n_features: int, layers: int = 1) -> list[int]:
    """Hidden sizes of the space whose model stays within `max_parameters`."""
    low, high = space.hidden
    sizes = [
        h
        for h in range(low, high + 1, space.hidden_step)
        if lstm_parameters(n_features, h, layers) <= space.max_parameters
    ]
    if not sizes:
        raise ValueError(
            f"no hidden size in {space.hidden} keeps {n_features} features under "
            f"{space.max_parameters} parameters"
        )
    return sizes


def suggest(
    trial: optuna.Trial, space: SearchSpace, n_features: int, layers: int = 1
) -> TrialParams:
    """The trial's point; its parameter count is stored on the trial (`n_parameters`)."""
    params = TrialParams(
        window=trial.suggest_categorical("window", list(space.windows)),
        hidden=trial.suggest_categorical("hidden", hidden_choices(space, n_features, layers)),
        dropout=trial.suggest_float("dropout", *space.dropout),
        lr=trial.suggest_float("lr", *space.lr, log=True),
        weight_decay=trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        horizon=trial.suggest_categorical("horizon", list(space.horizons)),
        barrier_k=trial.suggest_categorical("barrier_k", list(space.barrier_k)),
        coverage=trial.suggest_categorical("coverage", list(space.coverages)),
    )
    trial.set_user_attr("n_parameters", lstm_parameters(n_features, params.hidden, layers))
    return params
