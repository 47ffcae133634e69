"""A portfolio candidate's life before production: fit, record, judge on validation's second half.

Shared by the Dagster assets of the portfolio strategy (`lstm_model`, `backtest_report`,
`production_model`): the same functions as one walk-forward fold (`portfolio_scorers`), on the
project's training and validation windows. The candidate is the configured scorer (the
default: what the walk-forward's written rule chose, `SIGNALS_SCORER`: the brief's LSTM or
gradient boosting on the same windows) with the operating point validation's first half
chose; validation's second half,
which chose nothing, judges it beside every baseline through the same layer, costs and
funding: the figures the gate reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.portfolio import PortfolioCosts, PortfolioResult
from pipeline.data.timeframes import candles_in
from pipeline.evaluation.baselines import predict_baselines
from pipeline.evaluation.portfolio_baselines import (
    RANDOM,
    percentile,
    random_sharpes,
    reference_decisions,
)
from pipeline.evaluation.portfolio_choice import PortfolioChoice
from pipeline.evaluation.portfolio_replay import VOL_DAYS, Replayer, headline
from pipeline.evaluation.portfolio_scorers import (
    SCORER_PORTFOLIO,
    FittedScorers,
    ScorerSettings,
    fit_scorers,
)
from pipeline.evaluation.portfolio_scores import to_panel
from pipeline.features.labels import FORWARD_DAYS, LabelRule
from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.model.config import TrainConfig
from pipeline.model.contract import segment_windows
from pipeline.model.scorer import SCORER_KINDS, LoadedScorer
from pipeline.model.trees import TreeEnsemble
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import decide
from pipeline.portfolio.model import KIND, MODEL_NAME, PortfolioSettings
from pipeline.portfolio.scores import score_from_probability
from pipeline.signals.calibration import accuracy
from pipeline.store.models import ModelRecord

RANDOM_DRAWS = 50  # random score panels the candidate is ranked among on the judging half
CANDIDATE = "candidate"  # the model judged, in the tables beside the baselines


@dataclass(frozen=True)
class PortfolioCandidateConfig:
    train_start: str
    train_end: str
    val_end: str
    markets: tuple[str, ...]
    timeframe: str = "1d"
    horizon_days: float = FORWARD_DAYS
    cross_sectional: bool = False
    portfolio: PortfolioConfig = SCORER_PORTFOLIO
    choice: PortfolioChoice = field(default_factory=PortfolioChoice)
    train: TrainConfig = field(default_factory=TrainConfig)
    costs: PortfolioCosts = field(default_factory=PortfolioCosts)
    scorer: str = "lstm"  # what the record ships: "lstm" or "gbm" (the default's rule)

    def __post_init__(self) -> None:
        if self.scorer not in SCORER_KINDS:
            raise ValueError(
                f"scorer must be one of {', '.join(SCORER_KINDS)}, got {self.scorer!r}"
            )

    @property
    def rule(self) -> LabelRule:
        return LabelRule.forward(
            candles_in(self.horizon_days, self.timeframe), self.cross_sectional
        )

    @property
    def settings(self) -> ScorerSettings:
        return ScorerSettings(
            markets=self.markets,
            timeframe=self.timeframe,
            rule=self.rule,
            train=self.train,
            portfolio=self.portfolio,
            choice=self.choice,
        )


@dataclass
class PortfolioCandidate:
    fitted: FittedScorers
    features: list[str]
    config: PortfolioCandidateConfig

    @property
    def scorer(self) -> str:
        return self.config.scorer

    @property
    def chosen(self) -> PortfolioConfig:
        return self.fitted.chosen[self.scorer].config

    def fit_figures(self) -> dict[str, float]:
        """The shipped scorer's accuracy on validation, the majority's, and its train −
        validation gap (the LSTM's of its kept epoch; boosting's measured the same way)."""
        fitted = self.fitted
        majority = float(fitted.train.y.mean() >= 0.5)
        if self.scorer == "lstm":
            fold = fitted.record()
            val_accuracy, gap = fold["validation_accuracy"], fold["gap"]
        else:
            p_train = predict_baselines(fitted.baselines, fitted.train)[self.scorer]
            p_val = predict_baselines(fitted.baselines, fitted.validation)[self.scorer]
            val_accuracy = accuracy(p_val, fitted.validation.y)
            gap = accuracy(p_train, fitted.train.y) - val_accuracy
        return {
            "scorer": self.scorer,
            "val_accuracy": float(val_accuracy),
            "val_majority_accuracy": float(np.mean(fitted.validation.y == majority)),
            "val_windows": len(fitted.validation),
            "gap": float(gap),
        }

    def record(self) -> ModelRecord:
        """The model store's record: the scorer (the LSTM's network and scaler, or the
        boosting trees), its features, and everything live needs to turn its P(up) into the
        same weights (the score scale, the operating point, the market order of the layer's
        columns, the volatility window)."""
        fitted, cfg, scorer = self.fitted, self.config, self.scorer
        result = fitted.lstm.result
        lstm = scorer == "lstm"
        checkpoint = (
            checkpoint_bytes(result.state_dict)
            if lstm
            else TreeEnsemble.from_sklearn(fitted.baselines[scorer]).to_bytes()
        )
        return ModelRecord(
            name=MODEL_NAME,
            timeframe=cfg.timeframe,
            config={
                **(result.config if lstm else {"window": 1, "seed": cfg.train.seed}),
                "kind": KIND,
                "scorer": scorer,
                "horizon": cfg.rule.horizon,
                "label": cfg.rule.to_json(),
                "portfolio": self.chosen.to_json(),
                "score_scale": fitted.scales[scorer].scale,
                "universe": list(cfg.markets),  # the layer's columns, in order
                "vol_days": VOL_DAYS,
                "coverage": fitted.chosen[scorer].coverage,
                "operating_options": fitted.chosen[scorer].options,
                "factor_basket": sorted(cfg.markets),
                "costs": {
                    "fee": cfg.costs.fee,
                    "slippage_bps": cfg.costs.slippage_bps,
                    "funding_rate": cfg.costs.funding_rate,
                },
            },
            features=self.features,
            scaler=fitted.lstm.scaler.to_dict(),
            data_window={
                "markets": list(cfg.markets),
                **fitted.splits,
                "validation_halves": fitted.halves,
            },
            metrics={
                **self.fit_figures(),
                **(
                    {
                        "best_epoch": result.best_epoch,
                        "stopped": result.stopped,
                        "gap_flagged": result.gap_flagged,
                        "n_parameters": result.n_parameters,
                        "device": result.device,
                    }
                    if lstm
                    else {}
                ),
                "judged": fitted.judged[scorer],
                "judged_by_scorer": fitted.judged,
                "choices": fitted.record()["choices"],
            },
            seed=result.seed,
            checkpoint=checkpoint,
            epochs=result.epochs if lstm else [],
        )


def fit_portfolio_candidate(
    data: pd.DataFrame,
    selected: list[str],
    cfg: PortfolioCandidateConfig,
    replayer: Replayer,
    log: Callable[[str], None] = lambda message: None,
) -> PortfolioCandidate:
    """Fit the scorers on the training window, choose on validation's first half and judge
    on its second (`data`: the labelled feature frame of the decision timeframe)."""
    fitted = fit_scorers(
        data,
        selected,
        cfg.settings,
        _utc(cfg.train_start),
        _utc(cfg.train_end),
        _utc(cfg.val_end),
        replayer,
        log,
    )
    return PortfolioCandidate(fitted, list(selected), cfg)


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def stored_portfolio(record: ModelRecord) -> PortfolioSettings:
    """A portfolio record's operating point, score scale, market order and volatility window."""
    return PortfolioSettings.from_config(record.config, record.id)


def judge_rows(record: ModelRecord, replayer: Replayer) -> np.ndarray:
    """The panel rows of the record's judging half of validation."""
    first, last = record.data_window["validation_halves"]["judge"]
    return replayer.rows(pd.Timestamp(first), pd.Timestamp(last))


def model_judged(
    loaded: LoadedScorer,
    record: ModelRecord,
    data: pd.DataFrame,
    replayer: Replayer,
    rows: np.ndarray,
) -> PortfolioResult:
    """A stored portfolio model replayed over `rows` of the panel: its windows scored one at a
    time (the live path), through its own score scale and operating point."""
    settings = stored_portfolio(record)
    cfg, scale, universe = settings.config, settings.scale, settings.universe
    if universe != list(replayer.markets):
        raise ValueError(f"model {record.id} trades {universe}, the panel holds {replayer.markets}")
    ms = replayer.ms[rows]
    windows = segment_windows(
        data,
        loaded.features,
        loaded.window,
        record.timeframe,
        pd.Timestamp(int(ms[0]), unit="ms", tz="UTC"),
        pd.Timestamp(int(ms[-1]), unit="ms", tz="UTC"),
        markets=universe,
    )
    scores = to_panel(
        windows.market,
        windows.timestamp,
        scale.apply(score_from_probability(loaded.predict(windows))),
        universe,
        replayer.ms,
    )[rows]
    return replayer.run(rows, decide(scores, replayer.vol[rows], cfg))


def judged_beside_baselines(
    candidate: PortfolioResult,
    replayer: Replayer,
    rows: np.ndarray,
    null_config: PortfolioConfig,
    seed: int = 0,
    draws: int = RANDOM_DRAWS,
) -> dict[str, Any]:
    """The candidate's figures over `rows` (key `candidate`) beside the trend rule,
    cross-sectional momentum, buy-and-hold and random scores through the candidate's own
    operating point."""
    results = {CANDIDATE: candidate}
    results |= {
        name: replayer.run(rows, d) for name, d in reference_decisions(replayer, rows).items()
    }
    figures = {name: headline(r.metrics) for name, r in results.items()}
    if draws:
        null = random_sharpes(replayer, rows, [(len(rows), null_config)], draws, seed)
        sharpe = figures[CANDIDATE]["sharpe"]
        sharpe = sharpe if sharpe is not None and np.isfinite(sharpe) else -np.inf
        figures[RANDOM] = {
            "draws": draws,
            "sharpe_median": float(np.median(null)),
            "sharpe_p95": float(np.percentile(null, 95)),
            "candidate_percentile": percentile(null, sharpe),
        }
    return {"figures": figures, "results": results}
