"""Portfolio report: every strategy's shared equity, its exposure and turnover, and its figures.

One plot with two panels (equity on a log axis read as plain numbers; gross exposure per
candle), one table of headline figures per strategy after every cost, and the lead strategy's
per-market P&L attribution. Rule 4 of DESIGN.md: figures only beside their baselines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.backtest.portfolio import PortfolioResult
from pipeline.reporting.plots import plain_log_axis
from pipeline.tables import markdown_table

COLUMNS = (
    ("total_return", "net return", "{:+.1%}"),
    ("annualised_return", "annualised", "{:+.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "max drawdown", "{:.1%}"),
    ("turnover_per_year", "turnover / yr", "{:.1f}"),
    ("avg_gross_exposure", "avg gross exposure", "{:.2f}"),
    ("avg_net_exposure", "avg net exposure", "{:+.2f}"),
    ("trades", "fills", "{:.0f}"),
    ("fees_paid", "fees", "{:.2%}"),
    ("funding_paid", "funding", "{:+.2%}"),
)
ATTRIBUTION = (
    ("price_pnl", "price P&L", "{:+.2%}"),
    ("slippage", "slippage", "{:.2%}"),
    ("fees", "fees", "{:.2%}"),
    ("funding", "funding", "{:+.2%}"),
    ("net_pnl", "net P&L", "{:+.2%}"),
    ("fills", "fills", "{:.0f}"),
    ("funding_settlements", "settlements", "{:.0f}"),
    ("funding_filled_by_constant", "at the constant", "{:.0f}"),
)


@dataclass(frozen=True)
class PortfolioReport:
    png_path: Path
    markdown_path: Path
    table: str  # the headline table
    attribution: str  # the lead strategy's per-market table


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    return fmt.format(value)


def figures_table(results: Mapping[str, PortfolioResult]) -> str:
    """Markdown: one row per strategy, the headline figures after every cost."""
    rows = []
    for name, result in results.items():
        m = result.metrics
        label = f"{name} (liquidated {m['liquidated_at']})" if m.get("liquidated") else name
        rows.append([label, *(_cell(m.get(key), fmt) for key, _, fmt in COLUMNS)])
    return markdown_table(
        ["strategy", *(h for _, h, _ in COLUMNS)], rows, align="l" + "r" * len(COLUMNS)
    )


def attribution_table(result: PortfolioResult) -> str:
    """Markdown: per market, its share of the portfolio's P&L (fractions of start equity)."""
    table = result.by_market
    rows = [
        [market, *(_cell(row[key], fmt) for key, _, fmt in ATTRIBUTION)]
        for market, row in table.to_dict("index").items()
    ]
    return markdown_table(
        ["market", *(h for _, h, _ in ATTRIBUTION)], rows, align="l" + "r" * len(ATTRIBUTION)
    )


def plot_portfolios(results: Mapping[str, PortfolioResult], path: Path, title: str) -> None:
    """Equity (log axis, plain tick labels) above gross exposure, one line per strategy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    for name, result in results.items():
        equity = result.equity
        top.plot(equity.index, equity.clip(lower=1e-4).to_numpy(), label=name, linewidth=1.0)
        exposure = result.exposure["gross"]
        bottom.plot(exposure.index, exposure.to_numpy(), label=name, linewidth=0.7)
    plain_log_axis(top)
    top.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
    top.set_title(title)
    top.set_ylabel("equity (start = 1, after costs)")
    top.legend(loc="best", fontsize=8)
    top.grid(True, which="both", alpha=0.3)
    bottom.set_ylabel("gross exposure (× equity)")
    bottom.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_portfolio_report(
    results: Mapping[str, PortfolioResult],
    out_dir: Path,
    title: str,
    lead: str | None = None,
    notes: tuple[str, ...] = (),
) -> PortfolioReport:
    """Write `equity.png` and `report.md` to `out_dir`: every strategy's figures, and the
    per-market attribution of `lead` (default: the first strategy)."""
    if not results:
        raise ValueError("no strategies to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "equity.png"
    plot_portfolios(results, png, title)
    lead = lead or next(iter(results))
    table = figures_table(results)
    attribution = attribution_table(results[lead])
    costs = results[lead].costs
    lines = [
        f"# {title}",
        "",
        "![equity and exposure](equity.png)",
        "",
        "**Every strategy, one shared equity, after fees, slippage and funding**",
        "",
        table,
        "",
        f"**{lead}: each market's share of the P&L (fractions of the starting equity)**",
        "",
        attribution,
        "",
        f"Costs: taker fee {costs.fee:.4%} a side on traded notional, slippage "
        f"{costs.slippage_bps:g} bps a fill, funding at each settlement a position spans "
        f"(recorded where the history has it, else {costs.funding_rate:.4%} per 8h: the "
        "table counts those). Orders decided at a close fill at the next open; turnover is "
        "traded notional ÷ equity per year; exposure is Σ|position| ÷ equity at each close.",
        *notes,
    ]
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return PortfolioReport(png, md, table, attribution)
