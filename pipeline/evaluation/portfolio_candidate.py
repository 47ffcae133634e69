"""A portfolio candidate's life before production: fit, record, judge on validation's second half.

Shared by the Dagster assets of the portfolio strategy (`lstm_model`, `backtest_report`,
`production_model`): the same functions as one walk-forward fold (`portfolio_scorers`), on the
project's training and validation windows. The candidate is the LSTM scorer (the brief's
model) with the operating point validation's first half chose; validation's second half,
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
from pipeline.model.contract import MODEL_NAME, LoadedModel, segment_windows
from pipeline.model.training import TrainConfig
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import decide
from pipeline.portfolio.model import KIND, PortfolioSettings
from pipeline.portfolio.scores import score_from_probability
from pipeline.store.models import ModelRecord

RANDOM_DRAWS = 50  # random score panels the candidate is ranked among on the judging half


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
    def chosen(self) -> PortfolioConfig:
        return self.fitted.chosen["lstm"].config

    def record(self) -> ModelRecord:
        """The model store's record: the LSTM, its scaler and features, and everything live
        needs to turn its P(up) into the same weights (the score scale, the operating point,
        the market order of the layer's columns, the volatility window)."""
        fitted, cfg = self.fitted, self.config
        result = fitted.lstm.result
        fold = fitted.record()
        return ModelRecord(
            name=MODEL_NAME,
            timeframe=cfg.timeframe,
            config={
                **result.config,
                "kind": KIND,
                "horizon": cfg.rule.horizon,
                "label": cfg.rule.to_json(),
                "portfolio": self.chosen.to_json(),
                "score_scale": fitted.scales["lstm"].scale,
                "universe": list(cfg.markets),  # the layer's columns, in order
                "vol_days": VOL_DAYS,
                "coverage": fitted.chosen["lstm"].coverage,
                "operating_options": fitted.chosen["lstm"].options,
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
                "val_accuracy": fold["validation_accuracy"],
                "val_majority_accuracy": fold["validation_majority_accuracy"],
                "val_windows": fold["validation_windows"],
                "gap": fold["gap"],
                "best_epoch": result.best_epoch,
                "stopped": result.stopped,
                "gap_flagged": result.gap_flagged,
                "n_parameters": result.n_parameters,
                "device": result.device,
                "judged": fitted.judged["lstm"],
                "choices": fold["choices"],
            },
            seed=result.seed,
            checkpoint=checkpoint_bytes(result.state_dict),
            epochs=result.epochs,
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
    loaded: LoadedModel,
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
    """The candidate's figures over `rows` beside the trend rule, cross-sectional momentum,
    buy-and-hold and random scores through the candidate's own operating point."""
    results = {"lstm": candidate}
    results |= {
        name: replayer.run(rows, d) for name, d in reference_decisions(replayer, rows).items()
    }
    figures = {name: headline(r.metrics) for name, r in results.items()}
    if draws:
        null = random_sharpes(replayer, rows, [(len(rows), null_config)], draws, seed)
        sharpe = figures["lstm"]["sharpe"]
        sharpe = sharpe if sharpe is not None and np.isfinite(sharpe) else -np.inf
        figures[RANDOM] = {
            "draws": draws,
            "sharpe_median": float(np.median(null)),
            "sharpe_p95": float(np.percentile(null, 95)),
            "candidate_percentile": percentile(null, sharpe),
        }
    return {"figures": figures, "results": results}
