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
from pipeline.backtest.panel import Panel, panel
from pipeline.backtest.portfolio import PortfolioCosts, PortfolioResult, run_portfolio_backtest
from pipeline.data.aggregate import aggregate
from pipeline.data.timeframes import timeframe_ms
from pipeline.evaluation.baselines import baseline_probabilities
from pipeline.evaluation.default_choice import choose_default
from pipeline.evaluation.portfolio_choice import (
    ChosenPortfolio,
    PortfolioChoice,
    choose_portfolio,
    halves,
)
from pipeline.evaluation.portfolio_scores import (
    ScoreScale,
    blend,
    score_from_probability,
    to_panel,
)
from pipeline.evaluation.portfolio_verdict import record_portfolio_look
from pipeline.evaluation.walk_forward import fold_plan
from pipeline.features.compute import compute_features
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.features.registry import feature_names, warmups
from pipeline.features.selection import SelectionConfig, select_features
from pipeline.model.contract import fit_model, segment_windows
from pipeline.model.dataset import make_windows
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.model.training import TrainConfig
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide, decide_segments
from pipeline.portfolio.rules import candles_in, momentum_scores, trend_scores
from pipeline.portfolio.volatility import annual_volatility
from pipeline.signals.calibration import accuracy

FundingHistories = dict[str, list[tuple[int, float]]]

MODELS = ("lstm", "logistic", "gbm")  # fitted per fold, scores from P(up)
BLEND = "blend"  # the mean of the LSTM's and gradient boosting's normalised scores
SCORERS = (*MODELS, BLEND)
# What the default may be (DESIGN: the brief's LSTM, gradient boosting, or a blend of both);
# logistic regression is a baseline only.
DEFAULT_CANDIDATES = ("lstm", "gbm", BLEND)
RULES = ("trend", "xs_momentum")
REFERENCE = "buy_and_hold"
NULL = "random"
STRATEGIES = (*SCORERS, *RULES, REFERENCE)
VOL_DAYS = 30  # the volatility every position is sized by: the last 30 days, annualised

# The daily trend rule: each market's sleeve (1/N of the capital) scaled to 40 %
# annual volatility by its 30-day σ, capped at 2× the sleeve, every score held.
TREND_PORTFOLIO = PortfolioConfig(target_vol=0.40, selection="all", conviction=True)
# Cross-sectional momentum: market-neutral, long the strongest and short the weakest.
MOMENTUM_PORTFOLIO = PortfolioConfig(
    target_vol=0.40, selection="top_k", top_k=1, neutral=True, conviction=False
)
# Where scorers start before validation chooses their coverage: sized like the trend rule,
# long and short, a no-trade band of 5 % of equity so that a small change costs nothing.
SCORER_PORTFOLIO = PortfolioConfig(target_vol=0.40, selection="threshold", band=0.05)


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
    horizon_days: float = 5.0  # the target's holding horizon H
    cross_sectional: bool = False  # rank the target across markets
    n_select: int = 50
    max_warmup_days: float = 60.0  # candidate features must be usable this soon
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


def candidate_features(timeframe: str, max_warmup_days: float) -> list[str]:
    """The registry's features whose warm-up fits in `max_warmup_days` at `timeframe`."""
    limit = candles_in(max_warmup_days, timeframe)
    warm = warmups(timeframe)
    return [name for name in feature_names() if warm[name] <= limit]


class Replayer:
    """The whole history's panel and what a backtest of any span of it needs."""

    def __init__(
        self,
        candles: dict[str, pd.DataFrame],
        hourly: dict[str, pd.DataFrame],
        funding: FundingHistories,
        timeframe: str,
        markets: list[str],
        costs: PortfolioCosts,
    ):
        self.panel = panel({m: candles[m] for m in markets}, timeframe)
        self.markets = markets
        self.hourly = {m: hourly[m] for m in markets if m in hourly}
        self.funding = {m: funding[m] for m in markets if m in funding}
        self.costs = costs
        self.timeframe = timeframe
        self.vol = annual_volatility(
            self.panel.close, self.panel.timestamps, timeframe, days=VOL_DAYS
        )

    @property
    def ms(self) -> np.ndarray:
        return self.panel.timestamps

    def rows(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Panel rows whose candle opens in [start, end]."""
        lo = np.searchsorted(self.ms, start.value // 1_000_000, side="left")
        hi = np.searchsorted(self.ms, end.value // 1_000_000, side="right")
        return np.arange(lo, hi)

    def run(
        self,
        rows: np.ndarray,
        decisions: PortfolioDecisions,
        costs: PortfolioCosts | None = None,
    ) -> PortfolioResult:
        return run_portfolio_backtest(
            sub_panel(self.panel, int(rows[0]), int(rows[-1]) + 1),
            decisions.targets,
            decisions.orders,
            costs or self.costs,
            funding=self.funding,
            hourly=self.hourly,
        )

    def replay(self, rows: np.ndarray) -> Callable[[np.ndarray, PortfolioConfig], dict]:
        """A `portfolio_choice.Replay` over `rows`: scores there → the backtest's figures."""

        def figures(scores: np.ndarray, cfg: PortfolioConfig) -> dict[str, Any]:
            return headline(self.run(rows, decide(scores, self.vol[rows], cfg)).metrics)

        return figures


def sub_panel(p: Panel, start: int, stop: int) -> Panel:
    """Rows [start, stop) of a panel (checked again: a cheap copy of a few thousand rows)."""
    return Panel(
        timestamps=p.timestamps[start:stop],
        markets=p.markets,
        open=p.open[start:stop],
        high=p.high[start:stop],
        low=p.low[start:stop],
        close=p.close[start:stop],
        timeframe=p.timeframe,
    )


def market_figures(result: PortfolioResult) -> dict[str, dict[str, Any]]:
    """Per market: its share of the portfolio's P&L (fractions of the starting equity)."""
    table = result.by_market
    return {
        market: {k: _plain(v) for k, v in row.items()}
        for market, row in table.to_dict("index").items()
    }


HEADLINE = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover_per_year",
    "avg_gross_exposure",
    "trades",
)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures every verdict table shows, plain floats (NaN where undefined)."""
    out = {k: _plain(metrics.get(k)) for k in HEADLINE}
    out["liquidated"] = bool(metrics.get("liquidated", False))
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    """Fit one fold on its past, choose each scorer's operating point, score its test slice."""
    tf, rule = cfg.timeframe, cfg.rule
    step = pd.Timedelta(milliseconds=timeframe_ms(tf))
    fit = data[(data["timestamp"] >= plan["fit_start"]) & (data["timestamp"] <= plan["test_end"])]
    train_rows = fit[fit["market"].isin(cfg.markets)]
    started = time.perf_counter()
    selection = select_features(
        train_rows[train_rows["timestamp"] <= plan["fit_end"]],
        names,
        SelectionConfig(
            train_end=plan["train_end"].isoformat(),
            validation_end=plan["fit_end"].isoformat(),
            timeframe=tf,
            horizon=rule.horizon,
            n_select=min(cfg.n_select, len(names)),
            seed=cfg.train.seed,
        ),
    )
    log(f"selected {len(selection.selected)} features in {time.perf_counter() - started:.0f} s")
    selected, window = selection.selected, cfg.train.window
    splits = chronological_split(
        make_windows(fit, selected, window, tf),
        SplitConfig(
            train_start=plan["fit_start"].isoformat(),
            train_end=plan["train_end"].isoformat(),
            val_end=plan["fit_end"].isoformat(),
            test_end=(plan["test_end"] + rule.horizon * step).isoformat(),
            window=window,
            horizon=rule.horizon,
            timeframe=tf,
        ),
    )
    train = splits.train.take(np.isin(splits.train.market, cfg.markets))
    val = splits.validation.take(np.isin(splits.validation.market, cfg.markets))
    bounds = splits.record()["validation"]
    first, last = pd.Timestamp(bounds["first_decision"]), pd.Timestamp(bounds["last_decision"])
    val_all = segment_windows(fit, selected, window, tf, first, last, markets=cfg.markets)
    test = segment_windows(
        fit, selected, window, tf, plan["test_start"], plan["test_end"], markets=cfg.markets
    )
    started = time.perf_counter()
    fitted = fit_model(train, val, cfg.train)
    log(f"LSTM trained in {time.perf_counter() - started:.0f} s ({fitted.result.stopped})")
    p_val = {
        "lstm": fitted.validation_probabilities(val_all),
        **baseline_probabilities(train, val_all, cfg.train.seed),
    }
    p_test = {"lstm": fitted.predict(test), **baseline_probabilities(train, test, cfg.train.seed)}
    for seed in cfg.seeds:  # the same fold and windows; only the LSTM's seed differs
        other = fit_model(train, val, replace(cfg.train, seed=seed))
        p_val[f"lstm_seed{seed}"] = other.validation_probabilities(val_all)
        p_test[f"lstm_seed{seed}"] = other.predict(test)
    val_rows = replayer.rows(first, last)
    choose_rows, judge_rows = halves(val_rows)
    markets = replayer.markets
    val_scores, test_scores, scales = {}, {}, {}
    for name, p in p_val.items():
        scale = ScoreScale.fit(score_from_probability(p))
        scales[name] = scale.scale
        val_scores[name] = to_panel(
            val_all.market,
            val_all.timestamp,
            scale.apply(score_from_probability(p)),
            markets,
            replayer.ms,
        )
        test_scores[name] = to_panel(
            test.market,
            test.timestamp,
            scale.apply(score_from_probability(p_test[name])),
            markets,
            replayer.ms,
        )
    val_scores[BLEND] = blend(val_scores["lstm"], val_scores["gbm"])
    test_scores[BLEND] = blend(test_scores["lstm"], test_scores["gbm"])
    configs: dict[str, PortfolioConfig] = {}
    judged: dict[str, dict[str, Any]] = {}
    choices: dict[str, Any] = {}
    for name, scores in val_scores.items():
        chosen: ChosenPortfolio = choose_portfolio(
            scores[choose_rows], cfg.portfolio, replayer.replay(choose_rows), cfg.choice
        )
        configs[name] = chosen.config
        judged[name] = replayer.replay(judge_rows)(scores[judge_rows], chosen.config)
        choices[name] = {
            "coverage": chosen.coverage,
            "threshold": chosen.config.threshold,
            "enough_trades": chosen.enough_trades,
            "options": chosen.options,
            "judged": judged[name],
        }
        log(
            f"{name}: coverage {chosen.coverage:g} chosen; judged half: Sharpe "
            f"{_fmt(judged[name]['sharpe'])}, net {_fmt(judged[name]['total_return'], '+.1%')}"
        )
    result = fitted.result
    record = {
        "plan": {k: v.isoformat() for k, v in plan.items()},
        "boundaries": splits.record(),
        "validation_halves": {
            "choose": [_iso(replayer.ms[choose_rows[0]]), _iso(replayer.ms[choose_rows[-1]])],
            "judge": [_iso(replayer.ms[judge_rows[0]]), _iso(replayer.ms[judge_rows[-1]])],
        },
        "selected": selected,
        "selection_uplift": selection.uplift,
        "score_scales": scales,
        "choices": choices,
        "stopped": result.stopped,
        "best_epoch": result.best_epoch,
        "epochs": len(result.epochs),
        "n_parameters": result.n_parameters,
        "gap": float(result.best["gap"]),
        "train_windows": len(train),
        "validation_windows": len(val),
        "validation_accuracy": accuracy(fitted.validation_probabilities(val), val.y),
        "validation_majority_accuracy": float(np.mean(val.y == float(train.y.mean() >= 0.5))),
    }
    return FoldOutcome(record, test_scores, configs, judged)


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _fmt(value: object, spec: str = ".2f") -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "–"


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


def _buy_and_hold(n: int, markets: int) -> PortfolioDecisions:
    """Equal weights ordered at the first decision and never again."""
    cfg = PortfolioConfig(
        selection="all", conviction=False, sizing="equal", long_only=True, min_hold=n + 1
    )
    return decide(np.ones((n, markets)), np.ones((n, markets)), cfg)


def _random_null(
    replayer: Replayer,
    test_rows: np.ndarray,
    segments: list[tuple[int, PortfolioConfig]],
    draws: int,
    seed: int,
) -> dict[str, Any]:
    """Random scores (uniform in [−1, 1]) through the LSTM's own operating points."""
    rng = np.random.default_rng(seed)
    vol = replayer.vol[test_rows]
    sharpe, total = np.empty(draws), np.empty(draws)
    for i in range(draws):
        scores = rng.uniform(-1.0, 1.0, size=vol.shape)
        metrics = replayer.run(test_rows, decide_segments(scores, vol, segments)).metrics
        sharpe[i] = _finite(metrics.get("sharpe"))
        total[i] = metrics["total_return"]
    return {"draws": draws, "sharpe": sharpe, "total_return": total}


def _finite(value: object) -> float:
    value = float(value) if value is not None else float("nan")
    return value if np.isfinite(value) else -np.inf


def _percentile(values: np.ndarray, value: float) -> float:
    return float(100.0 * np.mean(values < value) + 50.0 * np.mean(values == value))


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
    close = replayer.panel.close
    decisions["trend"] = decide(trend_scores(close, tf)[test_rows], vol, TREND_PORTFOLIO)
    decisions["xs_momentum"] = decide(
        momentum_scores(close, tf)[test_rows], vol, MOMENTUM_PORTFOLIO
    )
    decisions[REFERENCE] = _buy_and_hold(len(test_rows), len(markets))
    results = {name: replayer.run(test_rows, d) for name, d in decisions.items()}
    report: dict[str, Any] = {"pooled": {}, "markets": {}}
    for name in (*STRATEGIES, *[n for n in scored if n not in STRATEGIES]):
        report["pooled"][name] = headline(results[name].metrics)
        for market, figures in market_figures(results[name]).items():
            report["markets"].setdefault(market, {})[name] = figures
    started_null = time.perf_counter()
    null = _random_null(replayer, test_rows, segments_of["lstm"], cfg.random_draws, cfg.train.seed)
    lstm_sharpe = _finite(report["pooled"]["lstm"]["sharpe"])
    report["random_scores"] = {
        "draws": cfg.random_draws,
        "sharpe_median": float(np.median(null["sharpe"])) if cfg.random_draws else None,
        "sharpe_p95": float(np.percentile(null["sharpe"], 95)) if cfg.random_draws else None,
        "lstm_sharpe_percentile": _percentile(null["sharpe"], lstm_sharpe)
        if cfg.random_draws
        else None,
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
