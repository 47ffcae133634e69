"""Choosing the label rule (barrier width k, time limit T, margin) on training data only.

The rule, written down before any look at a test period: on a fit window's training markets,
for every (T, k, margin) in the grid, label the rows, fit the logistic baseline on the inner
training split (all candidate features, the window's last row, no-trade rows left out),
decide on the inner validation split at `PROXY_COVERAGE` (threshold fitted on those
validation probabilities, no expected-value filter), and replay validation with that rule's
exits and the configured costs. Keep the rule with the best pooled validation net Sharpe
among those with at least `MIN_TRADES` trades; ties go to the shorter T, then the smaller k,
then the smaller margin. A cheap proxy model chooses, so the LSTM's own fit never sees the
comparison, and nothing after the fit window's end is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.data.timeframes import timeframe_ms
from pipeline.evaluation.baselines import fit_logistic, probability_up
from pipeline.evaluation.operating_choice import (
    MIN_TRADES,
    Segment,
    best_option,
    replay_figures,
)
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.model.operating import OperatingPoint
from pipeline.signals.calibration import threshold_for_coverage

HORIZONS = (6, 12, 24)
BARRIER_KS = (1.0, 1.5, 2.0)
MARGINS = (0.0, 0.001)
PROXY_COVERAGE = 0.20


@dataclass(frozen=True)
class LabelChoice:
    rule: LabelRule
    table: pd.DataFrame  # one row per rule tried, with its validation figures
    enough_trades: bool


def grid(cost: float) -> list[LabelRule]:
    """The rules tried, in tie-break order (shorter T, smaller k, smaller margin first)."""
    return [
        LabelRule(horizon=t, barrier_k=k, margin=m, cost=cost)
        for t, k, m in itertools.product(HORIZONS, BARRIER_KS, MARGINS)
    ]


def choose_label_rule(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    names: list[str],
    *,
    timeframe: str,
    fit_start: pd.Timestamp,
    train_end: pd.Timestamp,
    fit_end: pd.Timestamp,
    costs: BacktestConfig,
    seed: int = 0,
    rules: list[LabelRule] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> LabelChoice:
    """The label rule by the procedure in this module's docstring (training markets only:
    `features` and `candles` hold just those)."""
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    usable = features[(features["timestamp"] >= fit_start) & (features["timestamp"] <= fit_end)]
    usable = usable.dropna(subset=names)
    rows = []
    tried = rules or grid(costs.round_trip)
    for rule in tried:
        data = attach_labels(usable, candles, timeframe, rule)
        reach = (rule.horizon + 1) * step  # a label reads up to the open after T candles
        train = data[(data["timestamp"] <= train_end - reach) & data["label"].notna()]
        val = data[(data["timestamp"] > train_end) & (data["timestamp"] <= fit_end - reach)]
        model = fit_logistic(train[names].to_numpy(), train["label"].to_numpy(), seed)
        p_val = probability_up(model, val[names].to_numpy())
        point = OperatingPoint(threshold=threshold_for_coverage(p_val, PROXY_COVERAGE))
        segment = Segment(
            market=val["market"].to_numpy(),
            timestamp=pd.DatetimeIndex(val["timestamp"]),
            scale=val["scale"].to_numpy(),
            p_up=p_val,
            label=val["label"].to_numpy(),
        )
        cfg = costs.exiting_by(rule, timeframe)
        figures = replay_figures(candles, segment, point.sides(p_val), cfg)
        outcomes = data.loc[data["timestamp"] <= train_end - reach, "outcome"]
        rows.append(
            {
                "horizon": rule.horizon,
                "barrier_k": rule.barrier_k,
                "margin": rule.margin,
                "train_rows": len(train),
                "no_trade_share": float((outcomes == -1).mean()),
                "up_share": float(train["label"].mean()),
                **figures,
            }
        )
        log(
            f"label T={rule.horizon} k={rule.barrier_k} margin={rule.margin}: validation "
            f"{figures['trades']} trades, Sharpe {figures['sharpe']:+.2f}, "
            f"net {figures['total_return']:+.1%}"
        )
    table = pd.DataFrame(rows)
    best, enough = best_option(table, MIN_TRADES)  # the first of the best: the tie-break
    table["chosen"] = table.index == best
    return LabelChoice(rule=tried[best], table=table, enough_trades=enough)
