"""A candidate model's life before production: fit, record, backtest on validation.

Shared by the Dagster assets (`lstm_model`, `backtest_report`, `production_model`): the same
functions fit and judge a model whether the UI, the schedule or a test asks. Fitting, loading
and predicting go through the model contract (pipeline.model.contract), as walk-forward
evaluation and live inference do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import BacktestResult
from pipeline.evaluation.baselines import baseline_probabilities
from pipeline.evaluation.comparison import compare_strategies
from pipeline.evaluation.operating_choice import (
    OperatingChoice,
    Segment,
    choose_operating_point,
)
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.model.config import TrainConfig
from pipeline.model.contract import (
    MODEL_NAME,
    LoadedModel,
    fit_model,
    segment_windows,
    window_scale,
)
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.ensemble import member_mean, member_seeds
from pipeline.model.operating import Edge, OperatingPoint, fit_edge
from pipeline.model.scaler import Scaler
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.signals.calibration import accuracy, expected_calibration_error
from pipeline.store.models import MemberCheckpoint, ModelRecord

if TYPE_CHECKING:
    from pipeline.model.training import TrainResult


@dataclass(frozen=True)
class CandidateConfig:
    train_start: str
    train_end: str
    val_end: str
    timeframe: str = "1h"
    label: LabelRule = field(default_factory=LabelRule)
    operating: OperatingChoice = field(default_factory=OperatingChoice)
    train: TrainConfig = field(default_factory=TrainConfig)
    costs: BacktestConfig = field(default_factory=BacktestConfig)
    # Networks deciding by their mean P(up), seeds train.seed, train.seed + 1, …: 1 is one
    # model; the assets' default is the size validation chose (pipeline.model.ensemble).
    ensemble: int = 1

    def split(self) -> SplitConfig:
        return SplitConfig(
            train_start=self.train_start,
            train_end=self.train_end,
            val_end=self.val_end,
            window=self.train.window,
            horizon=self.label.horizon,
            timeframe=self.timeframe,
        )

    def exits(self) -> BacktestConfig:
        """The costs, with the label's exits: how this model's trades are replayed."""
        return self.costs.exiting_by(self.label, self.timeframe)


@dataclass
class Candidate:
    result: TrainResult
    scaler: Scaler
    features: list[str]
    markets: list[str]
    boundaries: dict[str, object]
    validation: dict[str, float]
    config: CandidateConfig
    operating: OperatingPoint
    operating_options: list[dict[str, object]]
    segment: Segment | None = None  # the validation decisions the point was chosen on
    edge: Edge | None = None  # the expected-value edge, from training rows
    # The validation split's P(up) and labels: what val_accuracy and val_ece measure (and
    # a reliability diagram draws). Not stored with the model.
    val_p_up: np.ndarray | None = None
    val_y: np.ndarray | None = None
    # Every network of an ensemble, in seed order (the first is `result`); empty: one model.
    members: list[TrainResult] = field(default_factory=list)

    @property
    def networks(self) -> list[TrainResult]:
        """The trained networks the candidate decides with (one, or an ensemble's)."""
        return self.members or [self.result]

    @property
    def chosen_option(self) -> dict[str, object]:
        """The operating option kept: its validation figures (coverage, trades, Sharpe…)."""
        return next(o for o in self.operating_options if o.get("chosen", True))

    def record(self) -> ModelRecord:
        """The store's record: one network's checkpoint, or each member's for an ensemble
        (its gap: the widest of its members', so no member escapes the bound)."""
        networks = self.networks
        ensemble = len(networks) > 1
        gap = max(float(r.best["gap"]) for r in networks)
        return ModelRecord(
            name=MODEL_NAME,
            timeframe=self.config.timeframe,
            config={
                **self.result.config,
                **(
                    {"ensemble": {"size": len(networks), "seeds": [r.seed for r in networks]}}
                    if ensemble
                    else {}
                ),
                "threshold": self.operating.threshold,
                "horizon": self.config.label.horizon,
                "label": self.config.label.to_json(),
                "operating": self.operating.to_json(),
                "operating_options": self.operating_options,
                "factor_basket": sorted(self.markets),  # live features use this factor
            },
            features=self.features,
            scaler=self.scaler.to_dict(),
            data_window={"markets": self.markets, **self.boundaries},
            metrics={
                **self.validation,
                "best_epoch": self.result.best_epoch,
                "stopped": self.result.stopped,
                "gap_flagged": any(r.gap_flagged for r in networks),
                "gap": gap,
                "n_parameters": self.result.n_parameters,
                "device": self.result.device,
                **({"members": [_member_figures(r) for r in networks]} if ensemble else {}),
            },
            seed=self.result.seed,
            checkpoint=b"" if ensemble else checkpoint_bytes(self.result.state_dict),
            members=[MemberCheckpoint(r.seed, checkpoint_bytes(r.state_dict)) for r in networks]
            if ensemble
            else [],
            epochs=self.result.epochs,  # the first network's (each member's: metrics)
        )


def _member_figures(result: TrainResult) -> dict[str, object]:
    """One ensemble member's fit, as the record keeps it (its curves: `epochs`)."""
    return {
        "seed": result.seed,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "gap": float(result.best["gap"]),
        "gap_flagged": result.gap_flagged,
        "epochs": result.epochs,
    }


def fit_candidate(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    selected: list[str],
    cfg: CandidateConfig,
) -> Candidate:
    """Label by the configured rule, train on the training split, early-stop on validation,
    fit the expected-value edge on training rows and choose the operating point on
    validation (`pipeline.evaluation.operating_choice`); nothing later is read.

    With `cfg.ensemble` > 1 the networks of seeds seed, seed + 1, … are each trained exactly
    as a single candidate of that seed (the evaluation's members), and their mean P(up)
    (`member_mean`) is what validation judges and the operating point is chosen on."""
    data = attach_labels(features, candles, cfg.timeframe, cfg.label)
    windows = make_windows(data, selected, cfg.train.window, cfg.timeframe)
    splits = chronological_split(windows, cfg.split())
    fits = [
        fit_model(splits.train, splits.validation, replace(cfg.train, seed=seed))
        for seed in member_seeds(cfg.train.seed, cfg.ensemble)
    ]
    fitted = fits[0]
    if any(f.scaler.to_dict() != fitted.scaler.to_dict() for f in fits[1:]):
        raise RuntimeError("ensemble members fitted different scalers on the same windows")
    p_val = member_mean([f.validation_probabilities(splits.validation) for f in fits])
    y_val = splits.validation.y
    majority = float(splits.train.y.mean() >= 0.5)
    bounds = splits.record()
    first = pd.Timestamp(bounds["train"]["first_decision"])
    last = pd.Timestamp(bounds["train"]["last_decision"])
    rows = data[(data["timestamp"] >= first) & (data["timestamp"] <= last)]
    edge = fit_edge(
        rows["forward_return"].to_numpy(), rows["outcome"].to_numpy(), rows["scale"].to_numpy()
    )
    decided = segment_windows(
        data,
        selected,
        cfg.train.window,
        cfg.timeframe,
        pd.Timestamp(bounds["validation"]["first_decision"]),
        pd.Timestamp(bounds["validation"]["last_decision"]),
    )
    segment = Segment(
        market=np.asarray(decided.market),
        timestamp=pd.DatetimeIndex(decided.timestamp),
        scale=window_scale(data, decided),
        p_up=member_mean([f.validation_probabilities(decided) for f in fits]),
        label=np.asarray(decided.y, dtype=np.float64),
    )
    chosen = choose_operating_point(candles, segment, edge, cfg.exits(), cfg.operating)
    return Candidate(
        result=fitted.result,
        scaler=fitted.scaler,
        features=list(selected),
        markets=sorted(set(data["market"])),
        boundaries=bounds,
        validation={
            "val_accuracy": accuracy(p_val, y_val),
            "val_majority_accuracy": float(np.mean(y_val == majority)),
            "val_ece": expected_calibration_error(p_val, y_val),
            "val_windows": len(y_val),
            "val_enough_trades": float(chosen.enough_trades),
        },
        config=cfg,
        operating=chosen.point,
        operating_options=chosen.table.to_dict("records"),
        segment=segment,
        edge=edge,
        val_p_up=np.asarray(p_val, dtype=np.float64),
        val_y=np.asarray(y_val, dtype=np.float64),
        members=[f.result for f in fits] if len(fits) > 1 else [],
    )


def validation_backtests(
    loaded: LoadedModel,
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
    timeframe: str,
    baselines_from: ModelRecord | None = None,
    costs: BacktestConfig | None = None,
) -> dict[str, dict[str, BacktestResult]]:
    """Strategy → market → backtest over [start, end]: the model, through its own label rule
    (exits) and operating point, and with `baselines_from` (the stored record: its training
    windows and seed) the logistic and boosting baselines through the same operating point,
    plus always-long and buy-and-hold."""
    rule = loaded.label
    cfg = (costs or BacktestConfig()).exiting_by(rule, timeframe)
    data = attach_labels(features, candles, timeframe, rule)
    windows = segment_windows(data, loaded.features, loaded.window, timeframe, start, end)
    scale = window_scale(data, windows)
    probabilities = {"lstm": loaded.predict(windows)}
    if baselines_from is not None:
        train = _training_windows(data, baselines_from)
        probabilities |= baseline_probabilities(train, windows, baselines_from.seed)
    decided = {name: loaded.operating.sides(p, scale) for name, p in probabilities.items()}
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
