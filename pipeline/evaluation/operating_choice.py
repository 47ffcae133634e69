"""Choosing a model's operating point on validation, where every option is shown.

The rule, fixed before any look: for each coverage in `COVERAGES` (the top k % of validation
windows by confidence), with and without the expected-value filter, fit the threshold on the
validation probabilities, replay the validation period with the label's exits and the
configured costs, and keep the option with the best pooled net Sharpe among those with at
least `min_trades` trades (fewer say nothing). If none has enough trades, the one with the
most trades is kept and the choice says so. A fixed threshold (the brief's 0.65) skips the
choice. The table of every option is the curve a report shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.pool import pool_metrics
from pipeline.evaluation.comparison import compare_strategies
from pipeline.model.operating import Edge, OperatingPoint
from pipeline.signals.calibration import threshold_for_coverage
from pipeline.stats import day_block_bootstrap

COVERAGES = (0.05, 0.10, 0.15, 0.20, 0.25, 0.35)
MIN_TRADES = 30


@dataclass(frozen=True)
class OperatingChoice:
    """How an operating point is chosen: the options tried and the trades an option needs."""

    coverages: tuple[float, ...] = COVERAGES
    expected_value: tuple[bool, ...] = (False, True)
    min_trades: int = MIN_TRADES
    fixed_threshold: float | None = None  # e.g. 0.65: no choice, this threshold, no EV filter
    buffer: float = 0.0  # what the expected value must clear beyond the round trip


@dataclass(frozen=True)
class ChosenPoint:
    point: OperatingPoint
    table: pd.DataFrame  # one row per option: coverage, filter, threshold, figures
    enough_trades: bool


@dataclass(frozen=True)
class Segment:
    """Decisions to judge: one row per window (market, timestamp, scale, P(up), label)."""

    market: np.ndarray
    timestamp: pd.DatetimeIndex
    scale: np.ndarray
    p_up: np.ndarray
    label: np.ndarray


def replay_figures(
    candles: dict[str, pd.DataFrame],
    segment: Segment,
    side: np.ndarray,
    cfg: BacktestConfig,
) -> dict[str, float]:
    """Pooled net figures of `side` over the segment's span, plus its precision on labels.

    Counts travel with the shares so a report can draw intervals: `labelled` signals are
    precision's denominator (Wilson), `signal_share` the share of windows traded (the
    coverage actually reached, below the nominal one under the expected-value filter), and
    the mean net return per trade comes with a day-block bootstrap interval.
    """
    start, end = segment.timestamp.min(), segment.timestamp.max()
    markets = sorted(set(segment.market))
    runs = compare_strategies(
        {m: candles[m] for m in markets},
        start,
        end,
        segment.market,
        segment.timestamp,
        {"x": side},
        cfg,
        references=False,
    )["x"]
    pooled = pool_metrics(runs) if len(runs) > 1 else next(iter(runs.values())).metrics
    signal = (side != 0) & np.isfinite(segment.label)
    right = (side[signal] == 1) == (segment.label[signal] == 1.0)
    trades = pd.concat([r.trades for r in runs.values()], ignore_index=True)
    wins = (trades["net_return"] > 0).to_numpy(dtype=float)
    net = trades["net_return"].to_numpy(dtype=float)
    return {
        "signals": int(np.count_nonzero(side)),
        "signal_share": float(np.count_nonzero(side) / len(side)) if len(side) else float("nan"),
        "labelled": int(right.size),
        "precision": float(right.mean()) if right.size else float("nan"),
        "precision_ci95": list(day_block_bootstrap(segment.timestamp[signal], right.astype(float))),
        "trades": int(pooled["trades"]),
        "net_win_rate": float(pooled["win_rate"]),
        "net_win_rate_ci95": list(day_block_bootstrap(trades["entry_time"], wins)),
        "mean_net_return": float(net.mean()) if net.size else float("nan"),
        "mean_net_return_ci95": list(day_block_bootstrap(trades["entry_time"], net)),
        "total_return": float(pooled["total_return"]),
        "sharpe": float(pooled["sharpe"]),
        "max_drawdown": float(pooled["max_drawdown"]),
        "profit_factor": float(pooled["profit_factor"]),
    }


def choose_operating_point(
    candles: dict[str, pd.DataFrame],
    validation: Segment,
    edge: Edge,
    cfg: BacktestConfig,
    choice: OperatingChoice | None = None,
) -> ChosenPoint:
    """The operating point by the rule in this module's docstring, and every option's row."""
    choice = choice or OperatingChoice()
    cost = cfg.round_trip
    if choice.fixed_threshold is not None:
        point = OperatingPoint(threshold=choice.fixed_threshold, cost=cost)
        figures = replay_figures(candles, validation, point.sides(validation.p_up), cfg)
        row = {"coverage": float("nan"), "ev_filter": False, "threshold": point.threshold}
        table = pd.DataFrame([{**row, **figures}])
        return ChosenPoint(point, table, figures["trades"] >= choice.min_trades)
    rows, points = [], []
    for coverage in choice.coverages:
        threshold = threshold_for_coverage(validation.p_up, coverage)
        for use_ev in choice.expected_value:
            point = OperatingPoint(
                threshold=threshold,
                coverage=coverage,
                edge=edge if use_ev else None,
                cost=cost,
                buffer=choice.buffer,
            )
            side = point.sides(validation.p_up, validation.scale)
            figures = replay_figures(candles, validation, side, cfg)
            rows.append(
                {"coverage": coverage, "ev_filter": use_ev, "threshold": threshold, **figures}
            )
            points.append(point)
    table = pd.DataFrame(rows)
    best, enough = best_option(table, choice.min_trades)
    table["chosen"] = table.index == best
    return ChosenPoint(points[best], table, enough)


def best_option(table: pd.DataFrame, min_trades: int) -> tuple[int, bool]:
    """Row of the best net Sharpe among rows with `min_trades` trades (the first on a tie),
    or, when none has that many, of the most trades; and whether any had enough."""
    eligible = table["trades"] >= min_trades
    if eligible.any():
        sharpe = table["sharpe"].where(eligible).fillna(-np.inf).to_numpy()
        return int(np.argmax(sharpe)), True
    return int(np.argmax(table["trades"].to_numpy())), False
