"""Walk-forward evaluation: the whole chain, refitted before each test period, on unseen data.

Per fold (a consecutive slice of the test range), everything is fitted on candles before that
slice only, and only on the training markets: feature selection, the scaler, the LSTM (early
stopping on the last share of the fit period), the confidence threshold (or the one fitted to
a coverage target on validation), and the baselines. The fold's models then decide on its
test slice for the test markets. Features are computed once on the whole history: they are
prefix-invariant (tests/test_features_prefix.py), so a feature at t is the same whether or
not later candles exist. Decisions of all folds are stitched per market and backtested once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import BacktestResult
from pipeline.backtest.pool import pool_metrics
from pipeline.data.timeframes import timeframe_ms
from pipeline.evaluation.baselines import BASELINES, baseline_probabilities
from pipeline.evaluation.comparison import REFERENCES, compare_strategies
from pipeline.features.compute import compute_features
from pipeline.features.labels import DEFAULT_HORIZON, attach_labels
from pipeline.features.registry import feature_names
from pipeline.features.selection import SelectionConfig, select_features
from pipeline.model.contract import DEFAULT_THRESHOLD, fit_model, segment_windows
from pipeline.model.dataset import make_windows
from pipeline.model.splits import SplitConfig, chronological_split
from pipeline.model.training import TrainConfig
from pipeline.signals.calibration import (
    accuracy,
    expected_calibration_error,
    precision_coverage,
    reliability_table,
    threshold_for_coverage,
)
from pipeline.signals.inference import sides
from pipeline.stats import day_block_bootstrap

MODELS = ("lstm", *BASELINES)  # strategies that decide from P(up): scored and backtested
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
    horizon: int = DEFAULT_HORIZON
    threshold: float = DEFAULT_THRESHOLD
    coverage: float | None = None  # when set, the threshold is fitted on validation to it
    n_select: int = 50
    train: TrainConfig = field(default_factory=TrainConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)

    @property
    def evaluated_markets(self) -> tuple[str, ...]:
        return self.test_markets or self.markets


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
    embargo = (cfg.train.window + cfg.horizon) * step
    test_start, test_end = _utc(cfg.test_start), _utc(cfg.test_end)
    train_start, train_end = _utc(cfg.train_start), _utc(cfg.train_end)
    if not train_start < train_end < test_start < test_end:
        raise ValueError("dates must satisfy train start < train end < test start < test end")
    edges = pd.date_range(test_start, test_end, periods=cfg.folds + 1)
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


def _fit_fold(
    data: pd.DataFrame, names: list[str], cfg: EvaluationConfig, plan: dict, log: Callable
) -> tuple[dict, pd.DataFrame]:
    """Fit one fold on its past; return its record and its test decisions per strategy."""
    fit = data[(data["timestamp"] >= plan["fit_start"]) & (data["timestamp"] <= plan["test_end"])]
    train_rows = fit[fit["market"].isin(cfg.markets)]
    started = time.perf_counter()
    selection = select_features(
        train_rows[train_rows["timestamp"] <= plan["fit_end"]],
        names,
        SelectionConfig(
            train_end=plan["train_end"].isoformat(),
            validation_end=plan["fit_end"].isoformat(),
            timeframe=cfg.timeframe,
            horizon=cfg.horizon,
            n_select=cfg.n_select,
            seed=cfg.train.seed,
        ),
    )
    log(f"selected {len(selection.selected)} features in {time.perf_counter() - started:.0f} s")
    split_cfg = SplitConfig(
        train_start=plan["fit_start"].isoformat(),
        train_end=plan["train_end"].isoformat(),
        val_end=plan["fit_end"].isoformat(),
        test_end=(
            plan["test_end"] + cfg.horizon * pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
        ).isoformat(),
        window=cfg.train.window,
        horizon=cfg.horizon,
        timeframe=cfg.timeframe,
    )
    windows = make_windows(fit, selection.selected, cfg.train.window, cfg.timeframe)
    splits = chronological_split(windows, split_cfg)
    fitting = np.isin(splits.train.market, cfg.markets)
    train = splits.train.take(fitting)
    val = splits.validation.take(np.isin(splits.validation.market, cfg.markets))
    # Decisions are made on every test window, labelled or not: a window whose next candle
    # closes exactly flat has no label, and dropping its decision would let the future
    # choose which candles trade. Classification figures use the labelled ones.
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
    threshold = threshold_for_coverage(p_val, cfg.coverage) if cfg.coverage else cfg.threshold
    probabilities = {
        "lstm": fitted.predict(test),
        **baseline_probabilities(train, test, cfg.train.seed),
    }
    decisions = pd.DataFrame(
        {
            "market": test.market,
            "timestamp": test.timestamp,
            "label": test.y,
            **{f"p_{name}": p for name, p in probabilities.items()},
            **{f"side_{name}": sides(p, threshold) for name, p in probabilities.items()},
        }
    )
    record = {
        "plan": {k: v.isoformat() for k, v in plan.items()},
        "boundaries": splits.record(),
        "selected": selection.selected,
        "selection_uplift": selection.uplift,
        "threshold": threshold,
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
    }
    return record, decisions


def _with_ci(stamps, hits: np.ndarray, seed: int) -> dict[str, float]:
    low, high = day_block_bootstrap(stamps, hits.astype(float), seed=seed)
    return {"value": float(hits.mean()) if len(hits) else float("nan"), "ci95": [low, high]}


def _classification(rows: pd.DataFrame, strategy: str, seed: int) -> dict[str, object]:
    if strategy not in MODELS:
        return {}
    rows = rows[rows["label"].notna()]  # unlabelled windows trade but cannot be scored
    p, y = rows[f"p_{strategy}"].to_numpy(), rows["label"].to_numpy()
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


def evaluate(
    candles: dict[str, pd.DataFrame],
    cfg: EvaluationConfig,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, object]:
    """Run the walk-forward evaluation; returns the JSON-ready report."""
    missing = set(cfg.markets) | set(cfg.evaluated_markets)
    missing -= set(candles)
    if missing:
        raise ValueError(f"no candles for {sorted(missing)}")
    started = time.perf_counter()
    names = feature_names()
    data = attach_labels(
        compute_features(candles, cfg.timeframe, basket=cfg.markets),
        candles,
        cfg.timeframe,
        cfg.horizon,
    )
    log(f"features and labels: {len(data)} rows in {time.perf_counter() - started:.1f} s")
    folds, decisions = [], []
    for k, plan in enumerate(fold_plan(cfg), 1):
        log(
            f"fold {k}/{cfg.folds}: fit {plan['fit_start']:%Y-%m-%d}…{plan['fit_end']:%Y-%m-%d}, "
            f"test {plan['test_start']:%Y-%m-%d}…{plan['test_end']:%Y-%m-%d}"
        )
        record, rows = _fit_fold(data, names, cfg, plan, log)
        folds.append(record)
        decisions.append(rows)
    rows = pd.concat(decisions, ignore_index=True)
    backtests = compare_strategies(
        {market: candles[market] for market in cfg.evaluated_markets},
        _utc(cfg.test_start),
        _utc(cfg.test_end),
        rows["market"].to_numpy(),
        rows["timestamp"],
        {name: rows[f"side_{name}"].to_numpy() for name in MODELS},
        replace(cfg.backtest, timeframe=cfg.timeframe, horizon=cfg.horizon),
    )
    seed = cfg.train.seed
    report: dict[str, object] = {"markets": {}, "pooled": {}}
    for strategy in STRATEGIES:
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
    report["folds"] = folds
    report["config"] = _config_json(cfg)
    report["seed_claims"] = SEED_CLAIMS
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["_backtests"] = backtests  # for the report plot; dropped before JSON
    return report


def _config_json(cfg: EvaluationConfig) -> dict[str, object]:
    out = asdict(cfg)
    out["evaluated_markets"] = list(cfg.evaluated_markets)
    return out
