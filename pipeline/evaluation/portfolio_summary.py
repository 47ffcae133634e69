"""A portfolio verdict as the tables and lines a person reads (`signals evaluate --portfolio`)."""

from __future__ import annotations

import math
from typing import Any

from pipeline.evaluation.portfolio_walk_forward import STRATEGIES
from pipeline.tables import markdown_table

LABELS = {
    "lstm": "LSTM",
    "logistic": "logistic regression",
    "gbm": "gradient boosting",
    "blend": "blend (LSTM + boosting)",
    "trend": "daily trend rule",
    "xs_momentum": "cross-sectional momentum",
    "buy_and_hold": "buy-and-hold (equal weights)",
}


def _pct(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):{'+' if signed else ''}.1f}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def verdict_table(report: dict[str, Any]) -> str:
    """One row per strategy: net figures after every cost, then net return and Sharpe at
    each fee of the cost sensitivity (the same decisions)."""
    pooled, sensitivity = report["pooled"], report.get("cost_sensitivity", {})
    fees = list(sensitivity.get("lstm", {}))
    header = [
        "strategy",
        "net %",
        "Sharpe",
        "Sortino",
        "max DD %",
        "turnover / yr",
        "avg gross exp.",
        "fills",
        *(f"net % / Sharpe at {100 * float(f):.2f} %/side" for f in fees),
    ]
    rows = []
    for name in STRATEGIES:
        f = pooled[name]
        default = " (default)" if name == report.get("default_strategy") else ""
        rows.append(
            [
                f"{LABELS.get(name, name)}{default}" + (" LIQUIDATED" if f["liquidated"] else ""),
                _pct(f["total_return"], signed=True),
                _num(f["sharpe"]),
                _num(f["sortino"]),
                _pct(f["max_drawdown"]),
                _num(f["turnover_per_year"], 1),
                _num(f["avg_gross_exposure"]),
                f["trades"],
                *(
                    f"{_pct(sensitivity[name][fee]['total_return'], True)} / "
                    f"{_num(sensitivity[name][fee]['sharpe'])}"
                    for fee in fees
                ),
            ]
        )
    return markdown_table(header, rows, align="l" + "r" * (len(header) - 1))


def random_line(report: dict[str, Any]) -> str:
    r = report.get("random_scores") or {}
    if not r.get("draws"):
        return "Random scores: none drawn."
    return (
        f"Random scores through the LSTM's own operating points ({r['draws']} draws, same "
        f"layer, costs and funding): Sharpe median {_num(r['sharpe_median'])}, 95th "
        f"percentile {_num(r['sharpe_p95'])}; the LSTM's Sharpe is at percentile "
        f"{_num(r['lstm_sharpe_percentile'], 1)}."
    )


def trials_line(report: dict[str, Any]) -> str:
    t = report.get("trials") or {}
    if t.get("trials") is None:
        return "Trials: this look was not recorded in the ledger."
    lines = [
        f"Trials: {t['looks']} walk-forward look(s) at an overlapping test period in the "
        f"ledger (this one is #{t['trial_id']}) and {t['tuning_trials']} tuning trial(s): "
        f"{t['trials']} in all."
    ]
    for name, d in (t.get("deflated") or {}).items():
        if d is None:
            lines.append(f"- {name}: no deflated Sharpe (its equity reached zero or stood still)")
            continue
        lines.append(
            f"- {name}: deflated Sharpe ratio {d['dsr']:.3f} (annualised Sharpe "
            f"{d['annualised_sharpe']:.2f}, {d['observations']} candles)"
        )
    return "\n".join(lines)


def seed_line(report: dict[str, Any]) -> str:
    spread = report.get("seed_spread") or {}
    if len(spread.get("seeds", [])) < 2:
        return "Seeds: one LSTM seed only; no per-seed spread measured."
    s = spread["spread"]
    return (
        f"LSTM seeds {spread['seeds']}: net return {_pct(s['total_return']['min'], True)} … "
        f"{_pct(s['total_return']['max'], True)} % (median "
        f"{_pct(s['total_return']['median'], True)}), Sharpe {_num(s['sharpe']['min'])} … "
        f"{_num(s['sharpe']['max'])}, max drawdown {_pct(s['max_drawdown']['min'])} … "
        f"{_pct(s['max_drawdown']['max'])} %."
    )


def funding_line(report: dict[str, Any]) -> str:
    funding = report.get("funding") or {}
    if not funding:
        return "Funding: no settlement fell in the test range."
    parts = [
        f"{m} {f['filled_by_constant']}/{f['settlements']} at the constant"
        for m, f in funding.items()
    ]
    rate = report["config"]["costs"]["funding_rate"]
    return (
        f"Funding: recorded rates where the history has them, else {100 * rate:.3f} % per "
        f"8h settlement: {', '.join(parts)}."
    )


def default_line(report: dict[str, Any]) -> str:
    rule = report.get("default_rule") or {}
    shown = ", ".join(
        f"{name} {_num(c['median_sharpe'])}" for name, c in rule.get("candidates", {}).items()
    )
    return (
        f"Default strategy: {report.get('default_strategy')} (rule: {rule.get('rule')}; "
        f"median judging-half Sharpe: {shown})."
    )
