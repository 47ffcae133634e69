"""The evaluation report as a table a person reads, beside the seed's claims."""

from __future__ import annotations

import math

import numpy as np

from pipeline.evaluation.tuned import TUNED_MODELS
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


def _num(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def summary_table(report: dict, scope: str = "pooled") -> str:
    """Markdown: one row per strategy, classification and net trading figures side by side,
    then net return at each fee of the cost sensitivity (pooled only: decisions unchanged)."""
    rows = report["pooled"] if scope == "pooled" else report["markets"][scope]
    fees = list(report.get("cost_sensitivity", {}).get("lstm", {})) if scope == "pooled" else []
    header = [
        "strategy",
        "trades",
        "coverage %",
        "precision % [95% CI]",
        "net win rate % [95% CI]",
        "net return %",
        "Sharpe",
        "Sortino",
        "max DD %",
        "profit factor",
        *(f"net % at {100 * float(fee):.2f} %/side" for fee in fees),
    ]
    table = []
    order = [name for name in ("lstm", *TUNED_MODELS) if name in rows]
    order += [name for name in STRATEGIES if name != "lstm"]
    for name in order:
        figures = rows[name]
        bt = figures.get("backtest", {})
        sensitivity = report["cost_sensitivity"][name] if fees else {}
        table.append(
            [
                "buy_and_hold (pooled: equal-weight basket)"
                if name == "buy_and_hold" and scope == "pooled"
                else name,
                bt.get("trades", "–"),
                _pct(figures.get("coverage", bt.get("coverage"))),
                _ci(figures.get("precision")),
                _ci(figures.get("net_win_rate")),
                _pct(bt.get("total_return")),
                _num(bt.get("sharpe")),
                _num(bt.get("sortino")),
                _pct(bt.get("max_drawdown")),
                _num(bt.get("profit_factor")),
                *(_pct(sensitivity[fee]["total_return"]) for fee in fees),
            ]
        )
    return markdown_table(header, table)


def random_line(report: dict) -> str:
    """Where the LSTM stands among random entries with its coverage, exits and costs."""
    r = report.get("random_entries")
    if not r:
        return ""
    lines = []
    for null, words in (
        ("uniform", "at uniformly random candles"),
        ("same_candles", "at the LSTM's own decision candles, random sides"),
    ):
        x = r[null]
        lines.append(
            f"Random entries {words} ({r['draws']} draws, same exits and costs; median "
            f"{x['trades']['median']:.0f} trades): pooled Sharpe median "
            f"{x['sharpe']['median']:.2f} [{x['sharpe']['p2_5']:.2f}, "
            f"{x['sharpe']['p97_5']:.2f}]; the LSTM's Sharpe is at percentile "
            f"{x['sharpe_percentile']:.1f}, its net return at "
            f"{x['total_return_percentile']:.1f}."
        )
    return "\n".join(lines)


def claims_table(report: dict) -> str:
    """The seed's claims beside what this evaluation measured."""
    lstm = report["pooled"]["lstm"]
    folds = report["folds"]
    measured = {
        "validation accuracy": ", ".join(_pct(v) + " %" for v in lstm["validation_accuracy"]),
        "win rate of filtered signals (net)": _ci(lstm.get("net_win_rate")) + " %",
        "coverage at the operating point": _pct(lstm.get("coverage")) + " %",
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
        "coverage at the operating point": "≈ 35 % (at 0.65)",
        "train − validation gap": "< 14 %",
        "parameters": "24,962",
        "selection uplift (accuracy)": "+0.5–1 %",
    }
    return markdown_table(
        ["figure", "seed claims", "measured (test unless noted)"],
        ([key, claim, measured[key]] for key, claim in claims.items()),
    )


def trials_line(report: dict) -> str:
    """How many looks at this test period the ledger holds, and the deflated Sharpe."""
    t = report.get("trials") or {}
    if t.get("trials") is None:
        return "Trials: this look was not recorded in the ledger."
    tuning = t.get("tuning_trials", 0)
    lines = [
        f"Trials: {t['looks']} look(s) at an overlapping test period in the ledger (this one "
        f"is #{t['trial_id']}) and {tuning} tuning trial(s): {t['trials']} in all."
    ]
    for name, d in t.get("deflated", {}).items():
        lines.append(
            f"- {name}: deflated Sharpe ratio {d['dsr']:.3f} (annualised Sharpe "
            f"{d['annualised_sharpe']:.2f} against the best-of-{t['trials']} benchmark "
            f"{d['expected_max_sharpe']:.2e} per candle, {d['observations']} candles)."
        )
    return "\n".join(lines)


def seed_line(report: dict, key: str = "seed_spread", model: str = "LSTM") -> str:
    """A model's pooled figures across seeds: one seed's figure is not a result."""
    spread = report.get(key) or {}
    if len(spread.get("seeds", [])) < 2:
        return f"Seeds: one {model} seed only; no per-seed spread measured."
    s = spread["spread"]
    net = s["total_return"]
    return (
        f"{model} seeds {spread['seeds']}: net return {100 * net['min']:+.1f} … "
        f"{100 * net['max']:+.1f} % (median {100 * net['median']:+.1f}), "
        f"Sharpe {s['sharpe']['min']:.2f} … {s['sharpe']['max']:.2f}, profit factor "
        f"{s['profit_factor']['min']:.2f} … {s['profit_factor']['max']:.2f}, trades "
        f"{s['trades']['min']:.0f} … {s['trades']['max']:.0f}."
    )


def tuned_lines(report: dict) -> str:
    """Per refit: the study, its best trial's parameters, and the ensemble size validation
    preferred (a table)."""
    rows = []
    for k, fold in enumerate(report["folds"], 1):
        tuned = fold.get("tuned")
        if not tuned:
            continue
        p = tuned["params"]
        complete = [t for t in tuned["trials"] if t["state"] == "complete"]
        sizes = tuned["ensemble_validation"]
        rows.append(
            [
                k,
                f"{len(complete)}/{len(tuned['trials'])}",
                _num(tuned["best_value"]),
                p["window"],
                f"{p['hidden']} ({tuned['n_parameters']:,})",
                _num(p["dropout"]),
                f"{p['lr']:.1e}",
                f"{p['weight_decay']:.1e}",
                f"{p['horizon']} / {p['barrier_k']}",
                _pct(p["coverage"]),
                ", ".join(f"{n}: {_num(v['sharpe'])}" for n, v in sizes.items()),
                tuned["ensemble_preferred"],
            ]
        )
    header = [
        "refit",
        "complete / trials",
        "best val Sharpe",
        "window",
        "hidden (params)",
        "dropout",
        "lr",
        "wd",
        "T / k",
        "coverage %",
        "ensemble val Sharpe by size",
        "preferred size",
    ]
    return markdown_table(header, rows)


def ensemble_line(report: dict) -> str:
    """Which the validation prefers, over every refit: one model or the mean of n seeds.

    Per refit, one model's figure is the median of the members' own validation Sharpes (the
    first member's alone is biased: the study chose on it); n seeds' is the mean
    probability's. The default is the size with the best median over the refits."""
    by_size: dict[int, list[float]] = {}
    for fold in report["folds"]:
        tuned = fold.get("tuned")
        if not tuned:
            continue
        singles = [m["validation"]["sharpe"] for m in tuned["members"]]
        by_size.setdefault(1, []).append(float(np.median(singles)))
        for n, figures in tuned["ensemble_validation"].items():
            if int(n) > 1:
                by_size.setdefault(int(n), []).append(float(figures["sharpe"]))
    if not by_size:
        return ""
    medians = {n: float(np.median(v)) for n, v in sorted(by_size.items())}
    best = max(medians, key=lambda n: (medians[n], -n))
    shown = ", ".join(
        f"{'one model (median seed)' if n == 1 else f'{n} seeds'} {m:+.2f}"
        for n, m in medians.items()
    )
    return (
        f"Ensemble on validation (median over {len(by_size[1])} refits of the validation net "
        f"Sharpe): {shown}; validation prefers "
        f"{'one model' if best == 1 else f'the mean of {best} seeds'}."
    )
