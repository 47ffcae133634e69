"""The operating point's curves: precision, net win rate and net return against coverage.

Every option the validation choice tried (`pipeline.evaluation.operating_choice`), with and
without the expected-value filter, as a table and a plot with 95 % intervals, so a reader
sees what the chosen point gave up and what the others would have made.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipeline.tables import markdown_table


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _with_ci(value: float, ci: list[float] | None) -> str:
    if ci is None or any(c is None or math.isnan(c) for c in ci):
        return _pct(value)
    return f"{_pct(value)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def options_table(options: list[dict]) -> str:
    """Markdown: one row per option tried on validation, the chosen one marked."""
    header = ["coverage %", "EV filter", "threshold", "trades", "precision % [95% CI]"]
    header += ["net win % [95% CI]", "net return %", "Sharpe", "PF", "chosen"]
    rows = []
    for o in options:
        coverage = o["coverage"]
        rows.append(
            [
                "fixed" if coverage is None or math.isnan(coverage) else f"{100 * coverage:.0f}",
                "yes" if o["ev_filter"] else "no",
                f"{o['threshold']:.4f}",
                o["trades"],
                _with_ci(o["precision"], o.get("precision_ci95")),
                _with_ci(o["net_win_rate"], o.get("net_win_rate_ci95")) if o["trades"] else "–",
                f"{100 * o['total_return']:+.2f}",
                f"{o['sharpe']:.2f}",
                f"{o['profit_factor']:.2f}",
                "◀" if o.get("chosen") else "",
            ]
        )
    return markdown_table(header, rows)


def operating_curve_png(options: list[dict], path: Path, title: str) -> Path:
    """Three panels against coverage (precision, net win rate, net return), one line per
    filter; intervals as error bars; the chosen option circled."""
    chosen = [o for o in options if o.get("chosen")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        ("precision", "precision_ci95", "precision %"),
        ("net_win_rate", "net_win_rate_ci95", "net win rate %"),
        ("total_return", None, "net return %"),
    )
    for ax, (key, ci_key, label) in zip(axes, panels, strict=True):
        for ev, colour in ((False, "tab:blue"), (True, "tab:orange")):
            line = [o for o in options if o["ev_filter"] == ev and o["coverage"] == o["coverage"]]
            if not line:
                continue
            x = [100 * o["coverage"] for o in line]
            y = [100 * o[key] for o in line]
            err = None
            if ci_key:
                err = [
                    [100 * (o[key] - o[ci_key][0]) for o in line],
                    [100 * (o[ci_key][1] - o[key]) for o in line],
                ]
            name = "EV filter" if ev else "rank only"
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colour, label=name)
        for o in chosen:
            if o["coverage"] == o["coverage"]:
                ax.scatter(
                    100 * o["coverage"],
                    100 * o[key],
                    s=160,
                    facecolors="none",
                    edgecolors="black",
                    zorder=3,
                )
        if key != "total_return":
            ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
        else:
            ax.axhline(0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("coverage % (validation)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
