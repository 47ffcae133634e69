"""The operating point's curves: precision and net return against coverage, with intervals.

Every option the validation choice tried (`pipeline.evaluation.operating_choice`), with and
without the expected-value filter, as a table and a plot with 95 % intervals, so a reader
sees what the chosen point gave up and what the others would have made. Precision's
interval is Wilson's, from the labelled signals; the mean net return per trade's is a
day-block bootstrap (trades of one day move together). Records stored before the options
carried those counts show the figures without intervals.
"""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.reporting.plots import empty_png, new_figure, png_bytes
from pipeline.stats import wilson_interval
from pipeline.tables import markdown_table

CURVE_CAPTION = (
    "Validation, every market pooled; ○ the chosen option. x: share of validation windows "
    "traded. 95 % intervals: precision Wilson (signals taken as independent, so too narrow "
    "where labels overlap), mean net return per trade day-block bootstrap; total net return "
    "is one path, without an interval."
)
TABLE_CAPTION = (
    "Precision: the side matched the label, Wilson 95 % interval. Net per trade: mean net "
    "return after costs, day-block bootstrap 95 % interval. Coverage: the nominal top share "
    "by confidence the threshold was fitted to."
)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _pct(value: object, digits: int = 1, sign: bool = False) -> str:
    if not _finite(value):
        return "–"
    return f"{100 * value:{'+' if sign else ''}.{digits}f}"  # type: ignore[operator]


def _interval(value: object, ci: object, digits: int = 1, sign: bool = False) -> str:
    text = _pct(value, digits, sign)
    if not (isinstance(ci, list | tuple) and len(ci) == 2 and all(_finite(c) for c in ci)):
        return text
    return f"{text} [{_pct(ci[0], digits, sign)}, {_pct(ci[1], digits, sign)}]"


def precision_wilson(option: dict) -> tuple[float, float] | None:
    """Wilson 95 % interval of an option's precision, or None without its count."""
    n = option.get("labelled")
    if not isinstance(n, int | float) or not n or not _finite(option.get("precision")):
        return None
    return wilson_interval(round(option["precision"] * n), int(n))


def _coverage_cell(coverage: object) -> str:
    return "fixed" if not _finite(coverage) else f"{100 * coverage:.0f}"  # type: ignore[operator]


def options_table(options: list[dict]) -> str:
    """Markdown: one row per option tried on validation, the chosen one marked."""
    header = ["coverage %", "EV filter", "threshold", "trades", "precision % [95% CI]"]
    header += ["net win %", "net/trade % [95% CI]", "net return %", "Sharpe", "PF", "chosen"]
    rows = []
    for o in options:
        traded = bool(o["trades"])
        rows.append(
            [
                _coverage_cell(o["coverage"]),
                "yes" if o["ev_filter"] else "no",
                f"{o['threshold']:.4f}",
                o["trades"],
                _interval(o["precision"], precision_wilson(o)),
                _pct(o["net_win_rate"]) if traded else "–",
                _interval(o.get("mean_net_return"), o.get("mean_net_return_ci95"), 2, True)
                if traded
                else "–",
                _pct(o["total_return"], 2, sign=True),
                f"{o['sharpe']:.2f}" if _finite(o["sharpe"]) else "–",
                f"{o['profit_factor']:.2f}" if _finite(o["profit_factor"]) else "–",
                "◀" if o.get("chosen") else "",
            ]
        )
    return markdown_table(header, rows, align="lllrrrrrrrl")


def _x(option: dict) -> float:
    """Where an option sits on the coverage axis: the share it traded (a fixed threshold
    and the expected-value filter have no nominal one to trust), else its nominal coverage."""
    for key in ("signal_share", "coverage"):
        value = option.get(key)
        if _finite(value):
            return 100 * value  # type: ignore[operator]
    return math.nan


def operating_curve_png(options: list[dict], path: Path, title: str) -> Path:
    """Three panels against coverage (precision, mean net return per trade, total net
    return), one line per filter, 95 % intervals as error bars, the chosen option circled;
    written to `path`. Nothing plottable gives a labelled empty plot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plotted = [o for o in options if _finite(_x(o))]
    if not plotted:
        path.write_bytes(empty_png(title, "no operating option with a coverage to plot"))
        return path
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, 3)
    panels = (
        ("precision", "precision %", 50.0),
        ("mean_net_return", "mean net return per trade %", 0.0),
        ("total_return", "total net return % (pooled)", 0.0),
    )
    for ax, (key, label, reference) in zip(axes, panels, strict=True):
        for ev, colour in ((False, "tab:blue"), (True, "tab:orange")):
            line = sorted((o for o in plotted if bool(o["ev_filter"]) == ev), key=_x)
            line = [o for o in line if _finite(o.get(key))]
            if not line:
                continue
            x = [_x(o) for o in line]
            y = [100 * o[key] for o in line]
            low, high = [], []
            for o, value in zip(line, y, strict=True):
                ci = precision_wilson(o) if key == "precision" else o.get(f"{key}_ci95")
                ok = isinstance(ci, list | tuple) and all(_finite(c) for c in ci)
                low.append(value - 100 * ci[0] if ok else 0.0)  # type: ignore[index]
                high.append(100 * ci[1] - value if ok else 0.0)  # type: ignore[index]
            err = None if key == "total_return" else [low, high]
            name = "EV filter" if ev else "rank only"
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colour, label=name)
        for o in plotted:
            if o.get("chosen") and _finite(o.get(key)):
                ax.scatter(
                    _x(o), 100 * o[key], s=160, facecolors="none", edgecolors="black", zorder=3
                )
        ax.axhline(reference, color="grey", linewidth=0.8, linestyle=":")
        # From 0 to past the widest option: a single coverage (a fixed threshold) would
        # otherwise be zoomed into a sliver such as 24.95–25.00 %.
        ax.set_xlim(0.0, 1.1 * max(_x(o) for o in plotted) + 1.0)
        ax.set_xlabel("validation windows traded %")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.write_bytes(png_bytes(fig))
    return path
