"""Fit the scorers of one fit window and choose each one's portfolio operating point.

Shared by every path that fits a portfolio model: a walk-forward fold and the Dagster
candidate (`lstm_model` under the portfolio strategy). On the fit window only: the scaler and
the LSTM (early-stopped on validation), logistic regression and gradient boosting on the same
windows, each scorer's score scale (fitted on validation's scores), and each scorer's operating
point, chosen on validation's first half and judged on its second (`portfolio_choice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation.baselines import fit_baselines, predict_baselines
from pipeline.evaluation.portfolio_choice import (
    ChosenPortfolio,
    PortfolioChoice,
    choose_portfolio,
    halves,
)
from pipeline.evaluation.portfolio_replay import Replayer
from pipeline.evaluation.portfolio_scores import to_panel
from pipeline.features.labels import LabelRule
from pipeline.model.config import TrainConfig
from pipeline.model.contract import FittedModel, fit_model, segment_windows
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.scores import ScoreScale, blend, score_from_probability
from pipeline.signals.calibration import accuracy

BLEND = "blend"  # the mean of the LSTM's and gradient boosting's normalised scores
# Where scorers start before validation chooses their coverage: sized like the trend rule,
# long and short, a no-trade band of 5 % of equity so that a small change costs nothing.
SCORER_PORTFOLIO = PortfolioConfig(target_vol=0.40, selection="threshold", band=0.05)


@dataclass(frozen=True)
class ScorerSettings:
    """What fitting the scorers of one window depends on."""

    markets: tuple[str, ...]
    timeframe: str
    rule: LabelRule
    train: TrainConfig = field(default_factory=TrainConfig)
    portfolio: PortfolioConfig = SCORER_PORTFOLIO
    choice: PortfolioChoice = field(default_factory=PortfolioChoice)
    seeds: tuple[int, ...] = ()  # more LSTM seeds, scored and chosen beside the first


@dataclass
class FittedScorers:
    """One fit window's models, their validation scores and their operating points."""

    lstm: FittedModel
    seeds: dict[int, FittedModel]
    baselines: dict[str, object]
    train: WindowSet
    validation: WindowSet  # labelled validation windows (accuracy, early stopping)
    decided: WindowSet  # every validation window, labelled or not: what is decided
    splits: dict[str, Any]  # the split boundaries and window counts
    scales: dict[str, ScoreScale]
    val_scores: dict[str, np.ndarray]  # scorer → [T, M] normalised scores on the panel
    chosen: dict[str, ChosenPortfolio]
    judged: dict[str, dict[str, Any]]  # scorer → figures on validation's judging half
    halves: dict[str, list[str]]  # the choosing and judging halves' first and last candle

    def probabilities(self, windows: WindowSet) -> dict[str, np.ndarray]:
        """Every scorer's P(up) on `windows` (the LSTM one window at a time, as live)."""
        out = {"lstm": self.lstm.predict(windows), **predict_baselines(self.baselines, windows)}
        out |= {f"lstm_seed{seed}": m.predict(windows) for seed, m in self.seeds.items()}
        return out

    def scores(self, windows: WindowSet, replayer: Replayer) -> dict[str, np.ndarray]:
        """Every scorer's normalised score on `windows`, as [T, M] panel arrays."""
        normalised = {
            name: to_panel(
                windows.market,
                windows.timestamp,
                self.scales[name].apply(score_from_probability(p)),
                replayer.markets,
                replayer.ms,
            )
            for name, p in self.probabilities(windows).items()
        }
        normalised[BLEND] = blend(normalised["lstm"], normalised["gbm"])
        return normalised

    def record(self) -> dict[str, Any]:
        """What a fold or a stored candidate keeps of the fit (JSON-ready)."""
        result = self.lstm.result
        majority = float(self.train.y.mean() >= 0.5)
        p_val = self.lstm.validation_probabilities(self.validation)
        return {
            "boundaries": self.splits,
            "validation_halves": self.halves,
            "score_scales": {name: s.scale for name, s in self.scales.items()},
            "choices": {
                name: {
                    "coverage": c.coverage,
                    "threshold": c.config.threshold,
                    "enough_trades": c.enough_trades,
                    "options": c.options,
                    "judged": self.judged[name],
                }
                for name, c in self.chosen.items()
            },
            "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "epochs": len(result.epochs),
            "n_parameters": result.n_parameters,
            "gap": float(result.best["gap"]),
            "train_windows": len(self.train),
            "validation_windows": len(self.validation),
            "validation_accuracy": accuracy(p_val, self.validation.y),
            "validation_majority_accuracy": float(np.mean(self.validation.y == majority)),
        }


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def fit_scorers(
    data: pd.DataFrame,
    selected: list[str],
    settings: ScorerSettings,
    fit_start: pd.Timestamp,
    train_end: pd.Timestamp,
    fit_end: pd.Timestamp,
    replayer: Replayer,
    log: Callable[[str], None] = lambda message: None,
) -> FittedScorers:
    """Fit every scorer on [fit_start, fit_end] (training to `train_end`, validation after an
    embargo) and choose each one's operating point on validation; nothing later is read."""
    tf, rule, window = settings.timeframe, settings.rule, settings.train.window
    fit = data[(data["timestamp"] >= fit_start) & (data["timestamp"] <= fit_end)]
    splits = chronological_split(
        make_windows(fit, selected, window, tf),
        SplitConfig(
            train_start=fit_start.isoformat(),
            train_end=train_end.isoformat(),
            val_end=fit_end.isoformat(),
            window=window,
            horizon=rule.horizon,
            timeframe=tf,
        ),
    )
    train = splits.train.take(np.isin(splits.train.market, settings.markets))
    val = splits.validation.take(np.isin(splits.validation.market, settings.markets))
    bounds = splits.record()
    first = pd.Timestamp(bounds["validation"]["first_decision"])
    last = pd.Timestamp(bounds["validation"]["last_decision"])
    decided = segment_windows(fit, selected, window, tf, first, last, markets=settings.markets)
    lstm = fit_model(train, val, settings.train)
    log(f"LSTM: {lstm.result.stopped} after {len(lstm.result.epochs)} epochs")
    seeds = {s: fit_model(train, val, replace(settings.train, seed=s)) for s in settings.seeds}
    baselines = fit_baselines(train, settings.train.seed)
    p_val = {
        "lstm": lstm.validation_probabilities(decided),
        **predict_baselines(baselines, decided),
        **{f"lstm_seed{s}": m.validation_probabilities(decided) for s, m in seeds.items()},
    }
    scales = {name: ScoreScale.fit(score_from_probability(p)) for name, p in p_val.items()}
    val_scores = {
        name: to_panel(
            decided.market,
            decided.timestamp,
            scales[name].apply(score_from_probability(p)),
            replayer.markets,
            replayer.ms,
        )
        for name, p in p_val.items()
    }
    val_scores[BLEND] = blend(val_scores["lstm"], val_scores["gbm"])
    choose_rows, judge_rows = halves(replayer.rows(first, last))
    chosen, judged = {}, {}
    for name, scores in val_scores.items():
        chosen[name] = choose_portfolio(
            scores[choose_rows], settings.portfolio, replayer.replay(choose_rows), settings.choice
        )
        judged[name] = replayer.replay(judge_rows)(scores[judge_rows], chosen[name].config)
        log(
            f"{name}: coverage {chosen[name].coverage:g} chosen; judged half: Sharpe "
            f"{_fmt(judged[name]['sharpe'])}, net {_fmt(judged[name]['total_return'], '+.1%')}"
        )
    return FittedScorers(
        lstm=lstm,
        seeds=seeds,
        baselines=baselines,
        train=train,
        validation=val,
        decided=decided,
        splits=bounds,
        scales=scales,
        val_scores=val_scores,
        chosen=chosen,
        judged=judged,
        halves={
            "choose": [_iso(replayer.ms[choose_rows[0]]), _iso(replayer.ms[choose_rows[-1]])],
            "judge": [_iso(replayer.ms[judge_rows[0]]), _iso(replayer.ms[judge_rows[-1]])],
        },
    )


def _fmt(value: object, spec: str = ".2f") -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "–"
