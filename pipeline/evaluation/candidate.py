"""A candidate model's life before production: fit, record, reload, backtest on validation.

Shared by the Dagster assets (`lstm_model`, `backtest_report`, `production_model`): the same
functions fit and judge a model whether the UI, the schedule or a test asks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import BacktestResult, buy_and_hold, run_backtest
from pipeline.evaluation.baselines import BASELINES, probability_up
from pipeline.features.labels import DEFAULT_HORIZON
from pipeline.model.checkpoint import checkpoint_bytes, read_checkpoint
from pipeline.model.dataset import Scaler, SplitConfig, WindowSet, chronological_split, make_windows
from pipeline.model.lstm import LSTMClassifier
from pipeline.model.training import TrainConfig, TrainResult, predict_proba, train_model
from pipeline.signals.calibration import expected_calibration_error
from pipeline.signals.inference import DEFAULT_THRESHOLD, decide_many, sides
from pipeline.store.models import ModelRecord

MODEL_NAME = "lstm"


class ModelMismatchError(ValueError):
    """A stored model cannot run on the inputs offered (features or shape differ)."""


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
    scaler = Scaler.fit(splits.train)
    result = train_model(splits.train, splits.validation, cfg.train, scaler)
    p_val = predict_proba(result.model(), scaler.apply(splits.validation).X).astype(np.float64)
    y_val = splits.validation.y
    majority = float(splits.train.y.mean() >= 0.5)
    return Candidate(
        result=result,
        scaler=scaler,
        features=list(features),
        markets=sorted(set(data["market"])),
        boundaries=splits.record(),
        validation={
            "val_accuracy": float(np.mean((p_val >= 0.5) == (y_val == 1.0))),
            "val_majority_accuracy": float(np.mean(y_val == majority)),
            "val_ece": expected_calibration_error(p_val, y_val),
            "val_windows": len(y_val),
        },
        config=cfg,
    )


@dataclass
class LoadedModel:
    """A stored model ready to decide: network, scaler, features, threshold and id."""

    model_id: int | None
    network: LSTMClassifier
    scaler: Scaler
    features: list[str]
    threshold: float
    window: int
    horizon: int


def load_for_inference(record: ModelRecord, available: list[str]) -> LoadedModel:
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
    cfg = record.config
    network = LSTMClassifier(len(record.features), cfg["hidden"], cfg["layers"], cfg["dropout"])
    state = read_checkpoint(record.checkpoint, record.id)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ModelMismatchError(
            f"model {record.id}: weights do not fit its config: {err}"
        ) from err
    return LoadedModel(
        model_id=record.id,
        network=network.eval(),
        scaler=scaler,
        features=list(record.features),
        threshold=float(cfg.get("threshold", DEFAULT_THRESHOLD)),
        window=int(cfg["window"]),
        horizon=int(cfg.get("horizon", DEFAULT_HORIZON)),
    )


def period_windows(
    data: pd.DataFrame,
    features: list[str],
    window: int,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> WindowSet:
    """Windows whose decision time lies in [start, end], every market given; a label may be
    unknown (a decision never depends on the next candle)."""
    windows = make_windows(data, features, window, timeframe, labelled=False)
    return windows.take((windows.timestamp >= start) & (windows.timestamp <= end))


def model_decisions(loaded: LoadedModel, windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    return decide_many(loaded.network, loaded.scaler.apply(windows).X, loaded.threshold)


def _series(candles: pd.DataFrame, windows: WindowSet, side: np.ndarray, market: str) -> np.ndarray:
    stamps = pd.to_datetime(candles["timestamp"], unit="ms", utc=True)
    mine = windows.market == market
    mapped = pd.Series(side[mine], index=windows.timestamp[mine])
    return stamps.map(mapped).fillna(0).to_numpy(dtype=np.int8)


def validation_backtests(
    loaded: LoadedModel,
    data: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
    timeframe: str,
    baselines_from: WindowSet | None = None,
    costs: BacktestConfig | None = None,
) -> dict[str, dict[str, BacktestResult]]:
    """Strategy → market → backtest over [start, end]: the model, and with `baselines_from`
    (training windows) the logistic and boosting baselines on the same filter, plus
    always-long and buy-and-hold."""
    cfg = replace(costs or BacktestConfig(), timeframe=timeframe, horizon=loaded.horizon)
    windows = period_windows(data, loaded.features, loaded.window, timeframe, start, end)
    _, model_side = model_decisions(loaded, windows)
    decided = {"lstm": model_side}
    if baselines_from is not None:
        train_rows = baselines_from.X.values[baselines_from.X.ends]
        rows = windows.X.values[windows.X.ends]
        for name, fit in BASELINES.items():
            model = fit(train_rows, baselines_from.y, 0)
            decided[name] = sides(probability_up(model, rows), loaded.threshold)
    out: dict[str, dict[str, BacktestResult]] = {}
    for market, frame in candles.items():
        stamps = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        period = frame[(stamps >= start) & (stamps <= end)].reset_index(drop=True)
        for name, side in decided.items():
            out.setdefault(name, {})[market] = run_backtest(
                period, _series(period, windows, side, market), cfg
            )
        if baselines_from is not None:
            out.setdefault("always_long", {})[market] = run_backtest(
                period, np.ones(len(period), np.int8), cfg
            )
            out.setdefault("buy_and_hold", {})[market] = buy_and_hold(period, cfg)
    return out


def training_windows(data: pd.DataFrame, record: ModelRecord) -> WindowSet:
    """The training split a stored model was fitted on (for baselines on the same rows)."""
    split = SplitConfig(**record.data_window["config"])
    windows = make_windows(data, record.features, split.window, split.timeframe)
    return chronological_split(windows, split).train


def config_json(cfg: CandidateConfig) -> dict[str, object]:
    return asdict(cfg)
