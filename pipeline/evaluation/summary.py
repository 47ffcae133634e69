"""The evaluation report as a table a person reads, beside the seed's claims."""

from __future__ import annotations

import math

from pipeline.evaluation.walk_forward import STRATEGIES
from pipeline.tables import markdown_table


def _pct(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}"


def _ci(figure: object) -> str:
    if not isinstance(figure, dict) or figure.get("value") is None:
        return "–"
    low, high = figure.get("ci95", [None, None])
    return f"{_pct(figure['value'])} [{_pct(low)}, {_pct(high)}]"


def summary_table(report: dict, scope: str = "pooled") -> str:
    """Markdown: one row per strategy, classification and trading figures side by side."""
    rows = report["pooled"] if scope == "pooled" else report["markets"][scope]
    header = [
        "strategy",
        "accuracy %",
        "coverage %",
        "precision % [95% CI]",
        "net win rate % [95% CI]",
        "trades",
        "net return %",
        "Sharpe",
        "max DD %",
    ]
    table = []
    for name in STRATEGIES:
        figures = rows[name]
        bt = figures.get("backtest", {})
        table.append(
            [
                name,
                _pct(figures.get("accuracy")),
                _pct(figures.get("coverage")),
                _ci(figures.get("precision")),
                _ci(figures.get("net_win_rate")),
                bt.get("trades", "–"),
                _pct(bt.get("total_return")),
                f"{bt.get('sharpe', float('nan')):.2f}",
                _pct(bt.get("max_drawdown")),
            ]
        )
    return markdown_table(header, table)


def claims_table(report: dict) -> str:
    """The seed's claims beside what this evaluation measured."""
    lstm = report["pooled"]["lstm"]
    folds = report["folds"]
    measured = {
        "validation accuracy": ", ".join(_pct(v) + " %" for v in lstm["validation_accuracy"]),
        "win rate of filtered signals (net)": _ci(lstm.get("net_win_rate")) + " %",
        "coverage at the threshold": _pct(lstm.get("coverage")) + " %",
        "train − validation gap": ", ".join(
            f"{100 * g:+.1f} pts" for g in lstm["train_validation_gap"]
        ),
        "parameters": str(lstm["n_parameters"]),
        "selection uplift (accuracy)": ", ".join(
            f"{100 * f['selection_uplift'].get('accuracy_uplift', float('nan')):+.2f} pts"
            for f in folds
        ),
    }
    claims = {
        "validation accuracy": "53 %",
        "win rate of filtered signals (net)": "56–58 %",
        "coverage at the threshold": "≈ 35 % (at 0.65)",
        "train − validation gap": "< 14 %",
        "parameters": "24,962",
        "selection uplift (accuracy)": "+0.5–1 %",
    }
    return markdown_table(
        ["figure", "seed claims", "measured (test unless noted)"],
        ([key, claim, measured[key]] for key, claim in claims.items()),
    )
