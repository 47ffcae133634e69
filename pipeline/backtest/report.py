"""Backtest report: every strategy's equity on one plot and its figures in three narrow tables.

Rule 4 of DESIGN.md: a model figure is reported only beside its baselines, so the report
names any of them that is missing instead of quietly leaving it out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.engine import BacktestResult
from pipeline.backtest.pool import pool_equity, pool_metrics
from pipeline.reporting.plots import plain_log_axis
from pipeline.tables import markdown_table

BASELINES = ("always_long", "buy_and_hold", "logistic", "gbm")

# (metric, column header, format): fractions as percentages, counts as integers. Three
# narrow tables rather than one wide one: each fits a metadata panel or a terminal.
RETURNS_COLUMNS = (
    ("total_return", "total return", "{:.1%}"),
    ("annualised_return", "annualised", "{:.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "max drawdown", "{:.1%}"),
    ("profit_factor", "profit factor", "{:.3f}"),
)
TRADES_COLUMNS = (
    ("trades", "trades", "{:.0f}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("avg_win", "avg win", "{:.3%}"),
    ("avg_loss", "avg loss", "{:.3%}"),
    ("coverage", "coverage", "{:.1%}"),
    ("exposure", "exposure", "{:.1%}"),
)
COSTS_COLUMNS = (
    ("trades", "trades", "{:.0f}"),
    ("gross_per_trade", "gross / trade", "{:+.3%}"),
    ("costs_per_trade", "costs / trade", "{:.3%}"),
    ("net_per_trade", "net / trade", "{:+.3%}"),
)
TABLES = {
    "returns": ("Returns and risk, after costs", RETURNS_COLUMNS),
    "trades": ("Trades (win: net return > 0)", TRADES_COLUMNS),
    "costs": ("Costs per trade (fees, slippage, funding; fraction of equity)", COSTS_COLUMNS),
}

# One market's replay, or several markets' replays of the same strategy (pooled).
StrategyResult = BacktestResult | Mapping[str, BacktestResult]


@dataclass(frozen=True)
class Report:
    png_path: Path
    markdown_path: Path
    table: str  # every table below its heading, as report.md has them
    metrics: dict[str, dict[str, Any]]
    tables: dict[str, str]  # "returns", "trades", "costs": each table alone


def _curve_and_metrics(result: StrategyResult) -> tuple[pd.Series, dict[str, Any]]:
    if isinstance(result, BacktestResult):
        return result.equity, result.metrics
    return pool_equity(result), pool_metrics(result)


def cost_figures(result: StrategyResult) -> dict[str, float]:
    """Mean gross return, costs and net return per trade (fractions of the equity at entry),
    every market's trades together; NaN without trades."""
    runs = [result] if isinstance(result, BacktestResult) else list(result.values())
    rows = np.concatenate([r.rows for r in runs]) if runs else np.empty((0, 9))
    gross, net = rows[:, 6], rows[:, 7]
    if not len(rows):
        nan = math.nan
        return {"trades": 0, "gross_per_trade": nan, "costs_per_trade": nan, "net_per_trade": nan}
    return {
        "trades": len(rows),
        "gross_per_trade": float(gross.mean()),
        "costs_per_trade": float((gross - net).mean()),
        "net_per_trade": float(net.mean()),
    }


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    return fmt.format(value)


def metrics_table(
    metrics: Mapping[str, Mapping[str, Any]], columns: tuple[tuple[str, str, str], ...]
) -> str:
    """Markdown table, one row per strategy, the given columns."""
    return markdown_table(
        ["strategy", *(h for _, h, _ in columns)],
        ([name, *(_cell(m[key], fmt) for key, _, fmt in columns)] for name, m in metrics.items()),
        align="l" + "r" * len(columns),
    )


def metrics_tables(
    metrics: Mapping[str, Mapping[str, Any]], costs: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The three tables of `TABLES`, each with its heading: costs from `cost_figures`."""
    out = {}
    for key, (heading, columns) in TABLES.items():
        source = costs if key == "costs" else metrics
        out[key] = f"**{heading}**\n\n{metrics_table(source, columns)}"
    return out


def plot_equity(curves: Mapping[str, pd.Series], path: Path, title: str, log: bool) -> None:
    # A bare Agg canvas, not pyplot: no global backend or figure registry to leak in a job.
    # matplotlib loads here, not at import (every Dagster run process imports this module).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(curve.index, curve.to_numpy(), label=name, linewidth=1.0)
    if log:
        plain_log_axis(ax)
    ax.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
    ax.set_title(title)
    ax.set_ylabel("equity (start = 1, after costs)")
    ax.legend(loc="best")
    ax.grid(True, which="both", alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _costs_line(results: Mapping[str, StrategyResult]) -> str:
    first = next(iter(results.values()))
    one = first if isinstance(first, BacktestResult) else next(iter(first.values()))
    c = one.config
    return (
        f"Costs: taker fee {c.fee:.4%} a side, slippage {c.slippage_bps:g} bps a side, funding "
        f"{c.funding_rate:.4%} per 8h; position size {c.position_size:g} × leverage "
        f"{c.leverage:g}; hold {c.horizon} × {c.timeframe}."
    )


def write_report(
    results: Mapping[str, StrategyResult],
    out_dir: Path,
    title: str,
    log: bool = True,
    notes: tuple[str, ...] = (),
) -> Report:
    """Write `equity.png` and `report.md` to out_dir; return their paths, table and metrics.
    `notes` are lines added below the costs (what the costs line cannot say)."""
    if not results:
        raise ValueError("no strategies to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves, metrics, costs = {}, {}, {}
    for name, result in results.items():
        curves[name], metrics[name] = _curve_and_metrics(result)
        costs[name] = cost_figures(result)
    png = out_dir / "equity.png"
    plot_equity(curves, png, title, log)
    tables = metrics_tables(metrics, costs)
    table = "\n\n".join(tables.values())
    missing = [b for b in BASELINES if b not in results]
    lines = [
        f"# {title}",
        "",
        "![equity](equity.png)",
        "",
        table,
        "",
        _costs_line(results),
        "Win rate: share of trades whose net return after all costs is > 0. Entries at the "
        "open after each decision; open positions are closed at the last close.",
        *notes,
    ]
    if missing:
        lines.append(f"**Baselines missing from this report: {', '.join(missing)}.**")
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Report(png_path=png, markdown_path=md, table=table, metrics=metrics, tables=tables)
