"""Walk-forward evaluation: the whole chain, refitted before each test period, on unseen data.

The label rule (barrier width, time limit, margin) is chosen once, on the first fold's fit
window (`pipeline.evaluation.label_choice`), unless the configuration fixes it. Per fold (a
consecutive slice of the test range), everything else is fitted on candles before that slice
only, and only on the training markets: feature selection, the scaler, the LSTM (early
stopping on the last share of the fit period), the expected-value edge (training rows), each
model's operating point (`pipeline.evaluation.operating_choice`, on validation), and the
baselines. The fold's models then decide on its test slice for the test markets. Features are
computed once on the whole history: they are prefix-invariant (tests/test_features_prefix.py),
so a feature at t is the same whether or not later candles exist. Decisions of all folds are
stitched per market and backtested once, with the label's exits, beside random entries at the
same coverage and the same exits, always-long and buy-and-hold (pooled: the equal-weight
basket), and again at each fee of `FEE_SENSITIVITY`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.backtest.config import FEE_SENSITIVITY, BacktestConfig
from pipeline.backtest.engine import BacktestResult, ExitSchedule
from pipeline.backtest.pool import pool_metrics
from pipeline.data.timeframes import timeframe_ms
from pipeline.evaluation.baselines import BASELINES, baseline_probabilities, momentum_probability
from pipeline.evaluation.comparison import REFERENCES, compare_strategies
from pipeline.evaluation.label_choice import HORIZONS, choose_label_rule
from pipeline.evaluation.operating_choice import OperatingChoice, Segment, choose_operating_point
from pipeline.evaluation.random_entries import random_entries
from pipeline.evaluation.tuned import TUNED_MODELS, TuningConfig, tune_fold
from pipeline.evaluation.verdict import record_look
from pipeline.evaluation.window_search import WindowSearch
from pipeline.features.compute import compute_features
from pipeline.features.labels import LABEL_COLUMNS, LabelRule, attach_labels
from pipeline.features.registry import feature_names
from pipeline.features.selection import SelectionConfig, select_features
from pipeline.model.config import TrainConfig
from pipeline.model.contract import fit_model, segment_windows, window_scale
from pipeline.model.dataset import WindowSet, make_windows
from pipeline.model.operating import fit_edge
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.signals.calibration import (
    accuracy,
    expected_calibration_error,
    precision_coverage,
    reliability_table,
)
from pipeline.stats import day_block_bootstrap
from pipeline.store.database import Database

# Strategies that decide from P(up): scored, filtered by their own operating point, replayed.
MODELS = ("lstm", *BASELINES, "momentum")
STRATEGIES = (*MODELS, *REFERENCES)
SEED_CLAIMS = {
    "validation_accuracy": 0.53,
    "filtered_win_rate": "0.56–0.58",
    "coverage_at_0.65": 0.35,
    "train_validation_gap_below": 0.14,
    "parameters": 24_962,
    "selection_uplift": "+0.5–1 %",
}


@dataclass(frozen=True)
class EvaluationConfig:
    markets: tuple[str, ...]
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    test_markets: tuple[str, ...] = ()
    timeframe: str = "1h"
    folds: int = 1
    validation_share: float = 0.2  # last share of each fit period: early stopping, threshold
    label: LabelRule | None = None  # None: chosen on the first fold's fit window
    label_candidates: tuple[LabelRule, ...] | None = None  # None: label_choice's grid
    operating: OperatingChoice = field(default_factory=OperatingChoice)
    n_select: int = 50
    random_draws: int = 1000
    seeds: tuple[int, ...] = ()  # more LSTM seeds, same everything else: the per-seed spread
    tuning: TuningConfig | None = None  # a study per refit, a tuned LSTM and its ensemble
    train: TrainConfig = field(default_factory=TrainConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)

    @property
    def horizon(self) -> int:
        """The longest time limit the label may get: what the embargo must cover."""
        if self.tuning is not None:
            longest = self.tuning.space.max_horizon
            return max(longest, self.label.horizon if self.label is not None else max(HORIZONS))
        if self.label is not None:
            return self.label.horizon
        return (
            max(r.horizon for r in self.label_candidates or ())
            if self.label_candidates
            else max(HORIZONS)
        )

    @property
    def max_window(self) -> int:
        """The longest window a model may read: what the embargo must cover."""
        if self.tuning is None:
            return self.train.window
        return max(self.train.window, self.tuning.space.max_window)

    @property
    def evaluated_markets(self) -> tuple[str, ...]:
        return self.test_markets or self.markets

    @property
    def models(self) -> tuple[str, ...]:
        """Strategies deciding from P(up) in this evaluation."""
        return (*MODELS, *TUNED_MODELS) if self.tuning is not None else MODELS


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def fold_plan(cfg: EvaluationConfig) -> list[dict[str, pd.Timestamp]]:
    """Per fold: fit start, inner train end, fit end (validation end), test start and end.

    The test range is cut into `folds` consecutive slices. A fold fits on candles up to an
    embargo (window + horizon candles) before its slice, and never past `train_end` for the
    first fold; later folds roll forward, keeping the first fit period's length. The last
    `validation_share` of each fit period is its validation split.
    """
    step = pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
    embargo = (cfg.max_window + cfg.horizon) * step
    test_start, test_end = _utc(cfg.test_start), _utc(cfg.test_end)
    train_start, train_end = _utc(cfg.train_start), _utc(cfg.train_end)
    if not train_start < train_end < test_start < test_end:
        raise ValueError("dates must satisfy train start < train end < test start < test end")
    # Edges on the candle grid: an edge between two opens would leave a candle in no slice.
    edges = pd.date_range(test_start, test_end, periods=cfg.folds + 1).floor(step)
    length = min(train_end, test_start - embargo + cfg.horizon * step) - train_start
    plan = []
    for k in range(cfg.folds):
        # validation decisions end H before fit_end; the next decision is an embargo later
        fit_end = edges[k] - embargo + cfg.horizon * step
        if k == 0:
            fit_end = min(fit_end, train_end)
        fit_start = fit_end - length
        plan.append(
            {
                "fit_start": fit_start,
                "train_end": fit_start + (1 - cfg.validation_share) * length,
                "fit_end": fit_end,
                "test_start": edges[k],
                "test_end": edges[k + 1] - (step if k + 1 < cfg.folds else pd.Timedelta(0)),
            }
        )
    return plan


def _segment(data: pd.DataFrame, windows: WindowSet, p_up: np.ndarray) -> Segment:
    return Segment(
        market=np.asarray(windows.market),
        timestamp=pd.DatetimeIndex(windows.timestamp),
        scale=window_scale(data, windows),
        p_up=p_up,
        label=np.asarray(windows.y, dtype=np.float64),
    )


def _fit_fold(
    data: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    names: list[str],
    cfg: EvaluationConfig,
    rule: LabelRule,
    plan: dict,
    log: Callable,
    server_url: str | None = None,
) -> tuple[dict, pd.DataFrame, tuple[int, int, float | None] | None]:
    """Fit one fold on its past; return its record, its test decisions per strategy and,
    when tuning, the exit rule its tuned models' decisions use."""
    fit = data[(data["timestamp"] >= plan["fit_start"]) & (data["timestamp"] <= plan["test_end"])]
    train_rows = fit[fit["market"].isin(cfg.markets)]
    step = pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
    started = time.perf_counter()
    selection = select_features(
        train_rows[train_rows["timestamp"] <= plan["fit_end"]],
        names,
        SelectionConfig(
            train_end=plan["train_end"].isoformat(),
            validation_end=plan["fit_end"].isoformat(),
            timeframe=cfg.timeframe,
            horizon=rule.horizon,
            n_select=cfg.n_select,
            seed=cfg.train.seed,
        ),
    )
    log(f"selected {len(selection.selected)} features in {time.perf_counter() - started:.0f} s")
    split_cfg = SplitConfig(
        train_start=plan["fit_start"].isoformat(),
        train_end=plan["train_end"].isoformat(),
        val_end=plan["fit_end"].isoformat(),
        test_end=(plan["test_end"] + rule.horizon * step).isoformat(),
        window=cfg.train.window,
        horizon=rule.horizon,
        timeframe=cfg.timeframe,
    )
    windows = make_windows(fit, selection.selected, cfg.train.window, cfg.timeframe)
    splits = chronological_split(windows, split_cfg)
    train = splits.train.take(np.isin(splits.train.market, cfg.markets))
    val = splits.validation.take(np.isin(splits.validation.market, cfg.markets))
    # Decisions are made on every window, labelled or not: a window whose outcome is "no
    # trade" has no label, and dropping its decision would let the future choose which
    # candles trade. Classification figures use the labelled ones.
    bounds = splits.record()["validation"]
    val_all = segment_windows(
        fit,
        selection.selected,
        cfg.train.window,
        cfg.timeframe,
        pd.Timestamp(bounds["first_decision"]),
        pd.Timestamp(bounds["last_decision"]),
        markets=cfg.markets,
    )
    test = segment_windows(
        fit,
        selection.selected,
        cfg.train.window,
        cfg.timeframe,
        plan["test_start"],
        plan["test_end"],
        markets=cfg.evaluated_markets,
    )
    started = time.perf_counter()
    fitted = fit_model(
        train,
        val,
        cfg.train,
        on_epoch=lambda e: log(
            f"epoch {int(e['epoch'])}: train acc {e['train_accuracy']:.4f} val acc "
            f"{e['val_accuracy']:.4f} gap {e['gap']:+.4f}"
        ),
    )
    result = fitted.result
    log(f"trained in {time.perf_counter() - started:.0f} s ({result.stopped})")
    p_val = fitted.validation_probabilities(val)
    edge_rows = train_rows[train_rows["timestamp"] <= plan["train_end"] - (rule.horizon + 1) * step]
    edge = fit_edge(
        edge_rows["forward_return"].to_numpy(),
        edge_rows["outcome"].to_numpy(),
        edge_rows["scale"].to_numpy(),
    )
    on_validation = {
        "lstm": fitted.validation_probabilities(val_all),
        **baseline_probabilities(train, val_all, cfg.train.seed),
        "momentum": momentum_probability(fit, val_all),
    }
    on_test = {
        "lstm": fitted.predict(test),
        **baseline_probabilities(train, test, cfg.train.seed),
        "momentum": momentum_probability(fit, test),
    }
    costs = cfg.backtest.exiting_by(rule, cfg.timeframe)
    fitted_candles = {m: candles[m] for m in cfg.markets}
    points, choices = {}, {}
    test_scale = window_scale(fit, test)
    for name, p in on_validation.items():
        chosen = choose_operating_point(
            fitted_candles, _segment(fit, val_all, p), edge, costs, cfg.operating
        )
        points[name] = chosen.point
        choices[name] = {
            "point": chosen.point.to_json(),
            "enough_trades": chosen.enough_trades,
            "options": chosen.table.to_dict("records"),
        }
        log(
            f"{name}: operating point coverage {chosen.point.coverage} threshold "
            f"{chosen.point.threshold:.4f} EV filter {chosen.point.edge is not None}"
        )
    seed_sides, seed_records = {}, {}
    for seed in cfg.seeds:  # the same fold, selection, edge and rule; only the LSTM's seed
        other = fit_model(train, val, replace(cfg.train, seed=seed))
        chosen = choose_operating_point(
            fitted_candles,
            _segment(fit, val_all, other.validation_probabilities(val_all)),
            edge,
            costs,
            cfg.operating,
        )
        seed_sides[f"side_lstm_seed{seed}"] = chosen.point.sides(other.predict(test), test_scale)
        seed_records[seed] = {
            "best_epoch": other.result.best_epoch,
            "gap": float(other.result.best["gap"]),
            "validation_accuracy": accuracy(other.validation_probabilities(val), val.y),
            "point": chosen.point.to_json(),
        }
        gap = seed_records[seed]["gap"]
        log(f"lstm seed {seed}: coverage {chosen.point.coverage}, gap {gap:+.4f}")
    decisions = pd.DataFrame(
        {
            "market": test.market,
            "timestamp": test.timestamp,
            "label": test.y,
            "scale": test_scale,
            **{f"p_{name}": p for name, p in on_test.items()},
            **{f"side_{name}": points[name].sides(p, test_scale) for name, p in on_test.items()},
            **seed_sides,
        }
    )
    record = {
        "plan": {k: v.isoformat() for k, v in plan.items()},
        "boundaries": splits.record(),
        "selected": selection.selected,
        "selection_uplift": selection.uplift,
        "edge": {"win": edge.win, "loss": edge.loss},
        "scaler_sha256": hashlib.sha256(
            json.dumps(fitted.scaler.to_dict(), sort_keys=True).encode()
        ).hexdigest(),
        "operating_points": choices,
        "stopped": result.stopped,
        "gap_flagged": result.gap_flagged,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "n_parameters": result.n_parameters,
        "train_windows": len(train),
        "validation_windows": len(val),
        "validation_accuracy": accuracy(p_val, val.y),
        "validation_ece": expected_calibration_error(p_val, val.y),
        "validation_reliability": reliability_table(p_val, val.y).to_dict("records"),
        "validation_precision_coverage": precision_coverage(
            p_val, val.y, val.timestamp, draws=200, seed=cfg.train.seed
        ).to_dict("records"),
        "gap": float(result.best["gap"]),
        "other_seeds": seed_records,
    }
    if cfg.tuning is None:
        return record, decisions, None
    if server_url is None:
        raise ValueError("tuning needs the project's database: its studies live in PostgreSQL")
    search = WindowSearch(
        markets=cfg.markets,
        fit_start=plan["fit_start"].isoformat(),
        fit_end=plan["fit_end"].isoformat(),
        selected=tuple(selection.selected),
        timeframe=cfg.timeframe,
        train=cfg.train,
        label=rule,
        operating=cfg.operating,
        costs=cfg.backtest,
        space=cfg.tuning.space,
        inner_folds=cfg.tuning.inner_folds,
        validation_share=cfg.validation_share,
    )
    features = data.drop(columns=[c for c in LABEL_COLUMNS if c in data.columns])
    record["tuned"], tuned, exits = tune_fold(
        features,
        candles,
        search,
        cfg.tuning,
        server_url,
        plan["test_start"],
        plan["test_end"],
        cfg.evaluated_markets,
        log,
    )
    # Keyed on the untuned model's decision candles: a shorter tuned window would add a few
    # candles right after gaps, which are left out (the same candles for every strategy).
    decisions = decisions.merge(tuned, on=["market", "timestamp"], how="left")
    for column in tuned.columns:
        if column.startswith("side_"):
            decisions[column] = decisions[column].fillna(0).astype(np.int8)
    return record, decisions, exits


def _with_ci(stamps, hits: np.ndarray, seed: int) -> dict[str, float]:
    low, high = day_block_bootstrap(stamps, hits.astype(float), seed=seed)
    return {"value": float(hits.mean()) if len(hits) else float("nan"), "ci95": [low, high]}


def _classification(rows: pd.DataFrame, strategy: str, seed: int) -> dict[str, object]:
    if f"p_{strategy}" not in rows.columns:
        return {}
    label = "label_tuned" if strategy in TUNED_MODELS else "label"  # each by its own rule
    rows = rows[rows[label].notna()]  # unlabelled windows trade but cannot be scored
    p, y = rows[f"p_{strategy}"].to_numpy(), rows[label].to_numpy()
    side = rows[f"side_{strategy}"].to_numpy()
    signal = side != 0
    right = (side[signal] == 1) == (y[signal] == 1.0)
    return {
        "samples": len(rows),
        "accuracy": accuracy(p, y),
        "coverage": float(signal.mean()) if len(rows) else float("nan"),
        "signals": int(signal.sum()),
        "precision": _with_ci(rows["timestamp"][signal], right, seed),
        "test_ece": expected_calibration_error(p, y),
    }


def _trading(results: dict[str, BacktestResult], seed: int) -> dict[str, object]:
    trades = pd.concat([r.trades for r in results.values()], ignore_index=True)
    metrics = pool_metrics(results) if len(results) > 1 else next(iter(results.values())).metrics
    wins = (trades["net_return"] > 0).to_numpy() if len(trades) else np.zeros(0, bool)
    net_win = _with_ci(trades["entry_time"], wins, seed) if len(trades) else {"value": None}
    return {"net_win_rate": net_win, "backtest": {k: _plain(v) for k, v in metrics.items()}}


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _choose_rule(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    names: list[str],
    cfg: EvaluationConfig,
    plan: dict,
    log: Callable,
) -> tuple[LabelRule, dict[str, object] | None]:
    if cfg.label is not None:
        return cfg.label, None
    started = time.perf_counter()
    fitted = features[features["market"].isin(cfg.markets)]
    choice = choose_label_rule(
        fitted,
        {m: candles[m] for m in cfg.markets},
        names,
        timeframe=cfg.timeframe,
        fit_start=plan["fit_start"],
        train_end=plan["train_end"],
        fit_end=plan["fit_end"],
        costs=cfg.backtest,
        seed=cfg.train.seed,
        rules=list(cfg.label_candidates) if cfg.label_candidates else None,
        log=log,
    )
    log(f"label rule {choice.rule} chosen in {time.perf_counter() - started:.0f} s")
    return choice.rule, {
        "chosen_on": {k: plan[k].isoformat() for k in ("fit_start", "train_end", "fit_end")},
        "enough_trades": choice.enough_trades,
        "options": choice.table.to_dict("records"),
    }


def _replay_test(
    candles: dict[str, pd.DataFrame],
    cfg: EvaluationConfig,
    rows: pd.DataFrame,
    costs: BacktestConfig,
    tuned_exits: ExitSchedule | None = None,
) -> dict[str, dict[str, BacktestResult]]:
    """Every strategy's stitched test decisions replayed over the test period; the tuned
    models' with the exit rule each refit chose."""
    return compare_strategies(
        candles,
        _utc(cfg.test_start),
        _utc(cfg.test_end),
        rows["market"].to_numpy(),
        rows["timestamp"],
        {name: rows[f"side_{name}"].to_numpy() for name in cfg.models},
        costs,
        schedules={name: tuned_exits for name in TUNED_MODELS} if tuned_exits else None,
    )


SPREAD_FIGURES = ("trades", "win_rate", "total_return", "sharpe", "profit_factor", "max_drawdown")


def _seed_spread(
    candles: dict[str, pd.DataFrame],
    cfg: EvaluationConfig,
    costs: BacktestConfig,
    rows: pd.DataFrame,
    lstm: dict,
    prefix: str = "side_lstm_seed",
    seeds: tuple[int, ...] | None = None,
    schedule: ExitSchedule | None = None,
) -> dict[str, object]:
    """A model's pooled test figures per seed (the reported one first: `lstm`) and their
    range; the other seeds' sides are the columns `prefix{seed}`."""
    per_seed = {cfg.train.seed: {k: float(lstm["backtest"][k]) for k in SPREAD_FIGURES}}
    for seed in cfg.seeds if seeds is None else seeds:
        runs = compare_strategies(
            candles,
            _utc(cfg.test_start),
            _utc(cfg.test_end),
            rows["market"].to_numpy(),
            rows["timestamp"],
            {"x": rows[f"{prefix}{seed}"].to_numpy()},
            costs,
            references=False,
            schedules={"x": schedule} if schedule else None,
        )["x"]
        pooled = pool_metrics(runs)
        per_seed[seed] = {k: float(pooled[k]) for k in SPREAD_FIGURES}
    spread = {
        k: {
            "min": min(f[k] for f in per_seed.values()),
            "median": float(np.median([f[k] for f in per_seed.values()])),
            "max": max(f[k] for f in per_seed.values()),
        }
        for k in SPREAD_FIGURES
    }
    return {"seeds": list(per_seed), "per_seed": per_seed, "spread": spread}


def _cost_sensitivity(
    candles: dict[str, pd.DataFrame],
    cfg: EvaluationConfig,
    costs: BacktestConfig,
    rows: pd.DataFrame,
    tuned_exits: ExitSchedule | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Strategy → fee a side → pooled net return and Sharpe, the decisions unchanged."""
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in (*cfg.models, *REFERENCES)}
    for fee in FEE_SENSITIVITY:
        runs = _replay_test(candles, cfg, rows, replace(costs, fee=fee), tuned_exits)
        for name, by_market in runs.items():
            pooled = pool_metrics(by_market)
            out[name][f"{fee:.4f}"] = {
                "total_return": float(pooled["total_return"]),
                "sharpe": float(pooled["sharpe"]),
                "profit_factor": float(pooled["profit_factor"]),
            }
    return out


def evaluate(
    candles: dict[str, pd.DataFrame],
    cfg: EvaluationConfig,
    log: Callable[[str], None] = lambda message: None,
    ledger: Database | None = None,
) -> dict[str, object]:
    """Run the walk-forward evaluation; returns the JSON-ready report.

    With `ledger` (the project's database) the look is appended to the trials ledger and the
    report carries the trial count and the deflated Sharpe; without it the report says the
    look went unrecorded (tests of the machinery, never a figure to quote).
    """
    missing = set(cfg.markets) | set(cfg.evaluated_markets)
    missing -= set(candles)
    if missing:
        raise ValueError(f"no candles for {sorted(missing)}")
    started = time.perf_counter()
    names = feature_names()
    features = compute_features(candles, cfg.timeframe, basket=cfg.markets)
    log(f"features: {len(features)} rows in {time.perf_counter() - started:.1f} s")
    plans = fold_plan(cfg)
    rule, label_choice = _choose_rule(features, candles, names, cfg, plans[0], log)
    data = attach_labels(features, candles, cfg.timeframe, rule)
    folds, decisions, exits = [], [], []
    server_url = ledger.url if ledger is not None else None
    for k, plan in enumerate(plans, 1):
        log(
            f"fold {k}/{cfg.folds}: fit {plan['fit_start']:%Y-%m-%d}…{plan['fit_end']:%Y-%m-%d}, "
            f"test {plan['test_start']:%Y-%m-%d}…{plan['test_end']:%Y-%m-%d}"
        )
        record, rows, fold_exits = _fit_fold(data, candles, names, cfg, rule, plan, log, server_url)
        folds.append(record)
        decisions.append(rows)
        if fold_exits is not None:
            exits.append(fold_exits)
    rows = pd.concat(decisions, ignore_index=True)
    tuned_exits: ExitSchedule | None = tuple(sorted(exits)) or None
    costs = cfg.backtest.exiting_by(rule, cfg.timeframe)
    tested = {market: candles[market] for market in cfg.evaluated_markets}
    backtests = _replay_test(tested, cfg, rows, costs, tuned_exits)
    seed = cfg.train.seed
    report: dict[str, object] = {"markets": {}, "pooled": {}}
    for strategy in (*cfg.models, *REFERENCES):
        report["pooled"][strategy] = {
            **_classification(rows, strategy, seed),
            **_trading(backtests[strategy], seed),
        }
        for market in cfg.evaluated_markets:
            report["markets"].setdefault(market, {})[strategy] = {
                **_classification(rows[rows["market"] == market], strategy, seed),
                **_trading({market: backtests[strategy][market]}, seed),
            }
    lstm = report["pooled"]["lstm"]
    lstm.update(
        train_validation_gap=[f["gap"] for f in folds],
        validation_accuracy=[f["validation_accuracy"] for f in folds],
        validation_ece=[f["validation_ece"] for f in folds],
        n_parameters=folds[0]["n_parameters"],
    )
    lstm["test_reliability"] = reliability_table(rows["p_lstm"], rows["label"]).to_dict("records")
    lstm["test_precision_coverage"] = precision_coverage(
        rows["p_lstm"], rows["label"], rows["timestamp"], draws=200, seed=seed
    ).to_dict("records")
    started_random = time.perf_counter()
    report["random_entries"] = random_entries(
        tested, backtests["lstm"], costs, draws=cfg.random_draws, seed=seed
    )
    log(
        f"{cfg.random_draws} random-entry draws in {time.perf_counter() - started_random:.0f} s: "
        "the LSTM's Sharpe is at percentile "
        f"{report['random_entries']['uniform']['sharpe_percentile']:.1f} (uniform) and "
        f"{report['random_entries']['same_candles']['sharpe_percentile']:.1f} (its own candles)"
    )
    report["cost_sensitivity"] = _cost_sensitivity(tested, cfg, costs, rows, tuned_exits)
    report["seed_spread"] = _seed_spread(tested, cfg, costs, rows, report["pooled"]["lstm"])
    if cfg.tuning is not None:
        members = tuple(cfg.train.seed + i for i in range(1, cfg.tuning.ensemble))
        report["tuned_seed_spread"] = _seed_spread(
            tested,
            cfg,
            costs,
            rows,
            report["pooled"]["lstm_tuned"],
            prefix="side_tuned_seed",
            seeds=members,
            schedule=tuned_exits,
        )
        report["tuned_exits"] = [
            {
                "from": pd.Timestamp(ms, unit="ms", tz="UTC").isoformat(),
                "horizon": t,
                "barrier_k": k,
            }
            for ms, t, k in tuned_exits or ()
        ]
    report["label_rule"] = rule.to_json()
    report["label_choice"] = label_choice
    report["folds"] = folds
    report["config"] = _config_json(cfg)
    report["trials"] = (
        record_look(ledger, report, backtests, costs.periods_per_year)
        if ledger is not None
        else {"trials": None, "note": "not recorded: no ledger given"}
    )
    report["seed_claims"] = SEED_CLAIMS
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["_backtests"] = backtests  # for the report plot; dropped before JSON
    return report


def _config_json(cfg: EvaluationConfig) -> dict[str, object]:
    out = asdict(cfg)
    out["evaluated_markets"] = list(cfg.evaluated_markets)
    return out
