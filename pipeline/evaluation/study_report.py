"""A study's trials for a reader: the best complete ones as a table, and the objective against
trial number as a plot (each complete trial a dot, the running best a line, pruned trials
marked), so one sees whether the budget was still finding better trials when it ran out.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipeline.reporting.plots import new_figure
from pipeline.tables import markdown_table

BEST_COLUMNS = (
    "number",
    "value",
    "window",
    "hidden",
    "n_parameters",
    "dropout",
    "lr",
    "weight_decay",
    "horizon",
    "barrier_k",
    "coverage",
)


def complete_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that finished with a value (`window_search.trials_frame` rows)."""
    if trials.empty:
        return trials
    return trials[trials["state"] == "complete"]


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column == "value":
        return f"{value:+.3f}"
    if column in ("lr", "weight_decay"):
        return f"{value:.1e}"
    if column == "dropout":
        return f"{value:.2f}"
    if column == "coverage":
        return f"{value:.0%}"
    if column == "n_parameters":
        return f"{int(value):,}"
    return str(value)


def best_trials_table(trials: pd.DataFrame, n: int = 5) -> str:
    """Markdown: the `n` best complete trials, best first (value: validation net Sharpe)."""
    best = complete_trials(trials).sort_values(["value", "number"], ascending=[False, True])
    columns = [c for c in BEST_COLUMNS if c in best.columns]
    rows = [[_cell(c, r[c]) for c in columns] for r in best.head(n).to_dict("records")]
    return markdown_table(columns, rows)


def objective_png(trials: pd.DataFrame, path: Path, title: str) -> Path:
    """The objective against trial number: dots for complete trials, the running best as a
    step line, a dotted vertical line at each pruned (or failed) trial, which has no value."""
    complete = complete_trials(trials)
    # A bare Agg canvas (`new_figure`), not pyplot: matplotlib loads at the first plot.
    fig = new_figure(8, 3.6)
    ax = fig.subplots()
    if not complete.empty:
        ax.scatter(complete["number"], complete["value"], color="tab:blue", label="trial", zorder=3)
        best = complete["value"].cummax()
        ax.step(complete["number"], best, where="post", color="tab:orange", label="running best")
    others = trials[trials["state"] != "complete"] if not trials.empty else trials
    for k, number in enumerate(others.get("number", [])):
        ax.axvline(
            number, color="grey", linestyle=":", linewidth=1, label="pruned" if k == 0 else None
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("trial number")
    ax.set_ylabel("validation net Sharpe (inner folds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
