"""A candidate model's life before production: fit, record, backtest on validation.

Shared by the Dagster assets (`lstm_model`, `backtest_report`, `production_model`): the same
functions fit and judge a model whether the UI, the schedule or a test asks. Fitting, loading
and predicting go through the model contract (pipeline.model.contract), as walk-forward
evaluation and live inference do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import BacktestResult
from pipeline.evaluation.baselines import baseline_probabilities
from pipeline.evaluation.comparison import compare_strategies
from pipeline.features.labels import DEFAULT_HORIZON
from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.model.contract import (
    DEFAULT_THRESHOLD,
    MODEL_NAME,
    LoadedModel,
    fit_model,
    segment_windows,
)
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.scaler import Scaler
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.model.training import TrainConfig, TrainResult
from pipeline.signals.calibration import accuracy, expected_calibration_error
from pipeline.signals.inference import sides
from pipeline.store.models import ModelRecord


@dataclass(frozen=True)
class CandidateConfig:
    train_start: str
    train_end: str
    val_end: str
    timeframe: str = "1h"
    horizon: int = DEFAULT_HORIZON
    threshold: float = DEFAULT_THRESHOLD
    train: TrainConfig = field(default_factory=TrainConfig)

    def split(self) -> SplitConfig:
        return SplitConfig(
            train_start=self.train_start,
            train_end=self.train_end,
            val_end=self.val_end,
            window=self.train.window,
            horizon=self.horizon,
            timeframe=self.timeframe,
        )


@dataclass
class Candidate:
    result: TrainResult
    scaler: Scaler
    features: list[str]
    markets: list[str]
    boundaries: dict[str, object]
    validation: dict[str, float]
    config: CandidateConfig

    def record(self) -> ModelRecord:
        best = self.result.best
        return ModelRecord(
            name=MODEL_NAME,
            timeframe=self.config.timeframe,
            config={
                **self.result.config,
                "threshold": self.config.threshold,
                "horizon": self.config.horizon,
                "factor_basket": sorted(self.markets),  # live features use this factor
            },
            features=self.features,
            scaler=self.scaler.to_dict(),
            data_window={"markets": self.markets, **self.boundaries},
            metrics={
                **self.validation,
                "best_epoch": self.result.best_epoch,
                "stopped": self.result.stopped,
                "gap_flagged": self.result.gap_flagged,
                "gap": best["gap"],
                "n_parameters": self.result.n_parameters,
                "device": self.result.device,
            },
            seed=self.result.seed,
            checkpoint=checkpoint_bytes(self.result.state_dict),
            epochs=self.result.epochs,
        )


def fit_candidate(data: pd.DataFrame, features: list[str], cfg: CandidateConfig) -> Candidate:
    """Train on the training split, early-stop and judge on validation; nothing later is read."""
    windows = make_windows(data, features, cfg.train.window, cfg.timeframe)
    splits = chronological_split(windows, cfg.split())
    fitted = fit_model(splits.train, splits.validation, cfg.train)
    p_val = fitted.validation_probabilities(splits.validation)
    y_val = splits.validation.y
    majority = float(splits.train.y.mean() >= 0.5)
    return Candidate(
        result=fitted.result,
        scaler=fitted.scaler,
        features=list(features),
        markets=sorted(set(data["market"])),
        boundaries=splits.record(),
        validation={
            "val_accuracy": accuracy(p_val, y_val),
            "val_majority_accuracy": float(np.mean(y_val == majority)),
            "val_ece": expected_calibration_error(p_val, y_val),
            "val_windows": len(y_val),
        },
        config=cfg,
    )


def validation_backtests(
    loaded: LoadedModel,
    data: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
    timeframe: str,
    baselines_from: ModelRecord | None = None,
    costs: BacktestConfig | None = None,
) -> dict[str, dict[str, BacktestResult]]:
    """Strategy → market → backtest over [start, end]: the model, and with `baselines_from`
    (the stored record: its training windows and seed) the logistic and boosting baselines on
    the same filter, plus always-long and buy-and-hold."""
    cfg = replace(costs or BacktestConfig(), timeframe=timeframe, horizon=loaded.horizon)
    windows = segment_windows(data, loaded.features, loaded.window, timeframe, start, end)
    probabilities = {"lstm": loaded.predict(windows)}
    if baselines_from is not None:
        train = _training_windows(data, baselines_from)
        probabilities |= baseline_probabilities(train, windows, baselines_from.seed)
    decided = {name: sides(p, loaded.threshold) for name, p in probabilities.items()}
    return compare_strategies(
        candles,
        start,
        end,
        windows.market,
        windows.timestamp,
        decided,
        cfg,
        references=baselines_from is not None,
    )


def _training_windows(data: pd.DataFrame, record: ModelRecord) -> WindowSet:
    """The training split a stored model was fitted on (for baselines on the same rows)."""
    split = SplitConfig(**record.data_window["config"])
    windows = make_windows(data, record.features, split.window, split.timeframe)
    return chronological_split(windows, split).train
