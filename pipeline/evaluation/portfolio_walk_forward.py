"""Walk-forward evaluation of portfolios: every market's score at each decision candle →
target weights (`pipeline.portfolio`) → one shared equity (`pipeline.backtest.portfolio`).

Per fold (a consecutive slice of the test range, as `walk_forward.fold_plan` cuts it), on
candles before the slice only and only on the training markets: feature selection, the
scaler, the LSTM (early stopping on validation), logistic regression and gradient boosting
on the same windows, each scorer's score scale, and each scorer's operating point, chosen on
the first half of validation and judged on the second (`portfolio_choice`). The fold's models
then score its test slice; each scorer's slices are stitched and run through the portfolio
layer in one pass (its state carried from fold to fold, each fold with its own operating
point) and through one backtest over the whole test range.

The target is the forward risk-adjusted return over `horizon_days` (`LabelRule.forward`): a
classifier's P(up) on it gives a score 2p − 1 whose size is its conviction. Beside the
scorers, through the same layer, costs and funding: the daily trend rule, cross-sectional
momentum, equal-weight buy-and-hold, and random scores through the LSTM's operating points
(the null). Candidate features are those whose warm-up fits in `max_warmup_days` at the
decision timeframe (an EMA of 200 daily candles would leave nothing to train on before 2023).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.config import FEE_SENSITIVITY, YEAR_MS
from pipeline.backtest.portfolio import PortfolioCosts
from pipeline.data.aggregate import aggregate
from pipeline.data.timeframes import candles_in
from pipeline.evaluation.default_choice import choose_default
from pipeline.evaluation.portfolio_baselines import (
    BUY_AND_HOLD,
    RULES,
    percentile,
    random_sharpes,
    reference_decisions,
)
from pipeline.evaluation.portfolio_choice import PortfolioChoice
from pipeline.evaluation.portfolio_replay import (
    FundingHistories,
    Replayer,
    headline,
    market_figures,
)
from pipeline.evaluation.portfolio_scorers import (
    BLEND,
    SCORER_PORTFOLIO,
    ScorerSettings,
    fit_scorers,
)
from pipeline.evaluation.portfolio_verdict import record_portfolio_look
from pipeline.evaluation.walk_forward import fold_plan
from pipeline.features.candidates import MAX_WARMUP_DAYS, candidate_features
from pipeline.features.compute import compute_features
from pipeline.features.labels import FORWARD_DAYS, LabelRule, attach_labels
from pipeline.features.selection import SelectionConfig, select_features
from pipeline.model.config import TrainConfig
from pipeline.model.contract import segment_windows
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide_segments

MODELS = ("lstm", "logistic", "gbm")  # fitted per fold, scores from P(up)
SCORERS = (*MODELS, BLEND)
# What the default may be (DESIGN: the brief's LSTM, gradient boosting, or a blend of both);
# logistic regression is a baseline only.
DEFAULT_CANDIDATES = ("lstm", "gbm", BLEND)
REFERENCE = BUY_AND_HOLD
STRATEGIES = (*SCORERS, *RULES, REFERENCE)


@dataclass(frozen=True)
class PortfolioEvaluationConfig:
    markets: tuple[str, ...]
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    timeframe: str = "1d"
    folds: int = 8
    validation_share: float = 0.3  # of each fit period: its halves choose and judge
    horizon_days: float = FORWARD_DAYS  # the target's holding horizon H
    cross_sectional: bool = False  # rank the target across markets
    n_select: int = 50
    max_warmup_days: float = MAX_WARMUP_DAYS  # candidate features must be usable this soon
    seeds: tuple[int, ...] = ()  # more LSTM seeds: the per-seed spread
    train: TrainConfig = field(default_factory=TrainConfig)
    costs: PortfolioCosts = field(default_factory=PortfolioCosts)
    portfolio: PortfolioConfig = SCORER_PORTFOLIO
    choice: PortfolioChoice = field(default_factory=PortfolioChoice)
    random_draws: int = 200

    @property
    def horizon(self) -> int:
        """H in decision candles."""
        return candles_in(self.horizon_days, self.timeframe)

    @property
    def max_window(self) -> int:
        return self.train.window

    @property
    def rule(self) -> LabelRule:
        return LabelRule.forward(self.horizon, self.cross_sectional)

    @property
    def scorer_settings(self) -> ScorerSettings:
        return ScorerSettings(
            markets=self.markets,
            timeframe=self.timeframe,
            rule=self.rule,
            train=self.train,
            portfolio=self.portfolio,
            choice=self.choice,
            seeds=self.seeds,
        )


@dataclass
class FoldOutcome:
    record: dict[str, Any]
    test_scores: dict[str, np.ndarray]  # strategy → [T, M] normalised scores on the panel
    configs: dict[str, PortfolioConfig]  # strategy → its chosen operating point
    judged: dict[str, dict[str, Any]]  # strategy → figures on validation's judging half


def _fit_fold(
    data: pd.DataFrame,
    names: list[str],
    cfg: PortfolioEvaluationConfig,
    plan: dict[str, pd.Timestamp],
    replayer: Replayer,
    log: Callable[[str], None],
) -> FoldOutcome:
    """Select features and fit every scorer on the fold's past, choose each one's operating
    point on validation, and score the fold's test slice."""
    tf = cfg.timeframe
    train_rows = data[
        data["market"].isin(cfg.markets)
        & (data["timestamp"] >= plan["fit_start"])
        & (data["timestamp"] <= plan["fit_end"])
    ]
    started = time.perf_counter()
    selection = select_features(
        train_rows,
        names,
        SelectionConfig(
            train_end=plan["train_end"].isoformat(),
            validation_end=plan["fit_end"].isoformat(),
            timeframe=tf,
            horizon=cfg.rule.horizon,
            n_select=min(cfg.n_select, len(names)),
            seed=cfg.train.seed,
        ),
    )
    log(f"selected {len(selection.selected)} features in {time.perf_counter() - started:.0f} s")
    fitted = fit_scorers(
        data,
        selection.selected,
        cfg.scorer_settings,
        plan["fit_start"],
        plan["train_end"],
        plan["fit_end"],
        replayer,
        log,
    )
    history = data[
        (data["timestamp"] >= plan["fit_start"]) & (data["timestamp"] <= plan["test_end"])
    ]
    test = segment_windows(
        history,
        selection.selected,
        cfg.train.window,
        tf,
        plan["test_start"],
        plan["test_end"],
        markets=cfg.markets,
    )
    record = {
        "plan": {k: v.isoformat() for k, v in plan.items()},
        "selected": selection.selected,
        "selection_uplift": selection.uplift,
        **fitted.record(),
    }
    return FoldOutcome(
        record,
        fitted.scores(test, replayer),
        {name: chosen.config for name, chosen in fitted.chosen.items()},
        fitted.judged,
    )


def _stitch(
    outcomes: list[FoldOutcome], name: str, fold_rows: list[np.ndarray], test_rows: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, PortfolioConfig]]]:
    """A strategy's test scores over the whole test range, and its per-fold operating points
    as the layer's segments (end row, exclusive, relative to the test range's first row)."""
    scores = np.full((len(test_rows), outcomes[0].test_scores[name].shape[1]), np.nan)
    segments = []
    for outcome, rows in zip(outcomes, fold_rows, strict=True):
        local = rows - test_rows[0]
        scores[local] = outcome.test_scores[name][rows]
        segments.append((int(local[-1]) + 1, outcome.configs[name]))
    return scores, segments


def evaluate_portfolio(
    hourly: dict[str, pd.DataFrame],
    cfg: PortfolioEvaluationConfig,
    funding: FundingHistories | None = None,
    log: Callable[[str], None] = lambda message: None,
    ledger=None,
) -> dict[str, Any]:
    """Run the portfolio walk-forward; returns the JSON-ready report (see the module).

    `hourly`: each market's 1h candles (the decision candles are aggregated from them, and
    they price the funding settlements inside a longer candle); `funding`: each market's
    recorded funding history, (settlement ms, rate) ascending, where there is one.
    """
    started = time.perf_counter()
    missing = sorted(set(cfg.markets) - set(hourly))
    if missing:
        raise ValueError(f"no candles for {missing}")
    markets = list(cfg.markets)
    tf = cfg.timeframe
    candles = {m: hourly[m] if tf == "1h" else aggregate(hourly[m], "1h", tf) for m in markets}
    replayer = Replayer(candles, hourly, funding or {}, tf, markets, cfg.costs)
    names = candidate_features(tf, cfg.max_warmup_days)
    features = compute_features(candles, tf, basket=cfg.markets)
    data = attach_labels(features, candles, tf, cfg.rule)
    log(
        f"features: {len(features)} rows, {len(names)} candidates, target {cfg.rule.kind} "
        f"over {cfg.horizon} × {tf}"
    )
    plans = fold_plan(cfg)
    outcomes = []
    for k, plan in enumerate(plans, 1):
        log(
            f"fold {k}/{cfg.folds}: fit {plan['fit_start']:%Y-%m-%d}…{plan['fit_end']:%Y-%m-%d}, "
            f"test {plan['test_start']:%Y-%m-%d}…{plan['test_end']:%Y-%m-%d}"
        )
        outcomes.append(_fit_fold(data, names, cfg, plan, replayer, log))
    fold_rows = [replayer.rows(p["test_start"], p["test_end"]) for p in plans]
    test_rows = np.concatenate(fold_rows)
    vol = replayer.vol[test_rows]
    decisions: dict[str, PortfolioDecisions] = {}
    segments_of: dict[str, list[tuple[int, PortfolioConfig]]] = {}
    scored = [name for name in outcomes[0].test_scores]  # scorers and the other seeds
    for name in scored:
        scores, segments = _stitch(outcomes, name, fold_rows, test_rows)
        segments_of[name] = segments
        decisions[name] = decide_segments(scores, vol, segments)
    decisions |= reference_decisions(replayer, test_rows)
    results = {name: replayer.run(test_rows, d) for name, d in decisions.items()}
    report: dict[str, Any] = {"pooled": {}, "markets": {}}
    for name in (*STRATEGIES, *[n for n in scored if n not in STRATEGIES]):
        report["pooled"][name] = headline(results[name].metrics)
        for market, figures in market_figures(results[name]).items():
            report["markets"].setdefault(market, {})[name] = figures
    started_null = time.perf_counter()
    null = random_sharpes(
        replayer, test_rows, segments_of["lstm"], cfg.random_draws, cfg.train.seed
    )
    lstm_sharpe = report["pooled"]["lstm"]["sharpe"]
    lstm_sharpe = lstm_sharpe if lstm_sharpe is not None and np.isfinite(lstm_sharpe) else -np.inf
    report["random_scores"] = {
        "draws": cfg.random_draws,
        "sharpe_median": float(np.median(null)) if cfg.random_draws else None,
        "sharpe_p95": float(np.percentile(null, 95)) if cfg.random_draws else None,
        "lstm_sharpe_percentile": percentile(null, lstm_sharpe) if cfg.random_draws else None,
    }
    log(f"{cfg.random_draws} random-score draws in {time.perf_counter() - started_null:.0f} s")
    report["cost_sensitivity"] = {
        name: {
            f"{fee:.4f}": headline(
                replayer.run(test_rows, decisions[name], replace(cfg.costs, fee=fee)).metrics
            )
            for fee in FEE_SENSITIVITY
        }
        for name in STRATEGIES
    }
    report["seed_spread"] = _seed_spread(report["pooled"], cfg)
    report["folds"] = [o.record for o in outcomes]
    report["validation_judged"] = {name: [o.judged[name] for o in outcomes] for name in SCORERS}
    report["default_strategy"], report["default_rule"] = choose_default(
        {name: report["validation_judged"][name] for name in DEFAULT_CANDIDATES}
    )
    report["funding"] = {
        market: {
            "settlements": int(figures["funding_settlements"]),
            "filled_by_constant": int(figures["funding_filled_by_constant"]),
        }
        for market, figures in market_figures(results[REFERENCE]).items()
    }
    report["config"] = _config_json(cfg)
    report["target"] = cfg.rule.to_json() | {"kind": cfg.rule.kind}
    report["trials"] = (
        record_portfolio_look(ledger, report, results, YEAR_MS / replayer.panel.step_ms)
        if ledger is not None
        else {"trials": None, "note": "not recorded: no ledger given"}
    )
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["_results"] = results  # for the report plot; dropped before JSON
    return report


SPREAD = ("total_return", "sharpe", "max_drawdown", "turnover_per_year")


def _seed_spread(pooled: dict[str, dict[str, Any]], cfg: PortfolioEvaluationConfig) -> dict:
    """The LSTM's test figures per seed (the reported seed first) and their range."""
    per_seed = {cfg.train.seed: pooled["lstm"]}
    per_seed |= {seed: pooled[f"lstm_seed{seed}"] for seed in cfg.seeds}
    spread = {
        k: {
            "min": float(np.nanmin([_nan(f[k]) for f in per_seed.values()])),
            "median": float(np.nanmedian([_nan(f[k]) for f in per_seed.values()])),
            "max": float(np.nanmax([_nan(f[k]) for f in per_seed.values()])),
        }
        for k in SPREAD
    }
    return {"seeds": list(per_seed), "spread": spread}


def _nan(value: object) -> float:
    return float("nan") if value is None else float(value)


def _config_json(cfg: PortfolioEvaluationConfig) -> dict[str, Any]:
    out = asdict(cfg)
    out["horizon_candles"] = cfg.horizon
    return out
