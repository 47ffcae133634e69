"""Plots for the asset pages, as PNG bytes: training curves, reliability, feature importance.

Each takes figures already computed (the training history, a reliability table, a ranking)
and only draws them, so a plot cannot disagree with the number beside it. A bare Agg canvas,
not pyplot: no global backend or figure registry to leak in a run process, and matplotlib
loads at the first plot, not at import (every Dagster run process imports the assets).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "gap")
RELIABILITY_KEYS = ("bin_low", "bin_high", "count", "mean_predicted", "observed_up")


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (inches)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plain_log_axis(ax: Axes) -> None:
    """A log y axis labelled with plain numbers (0.6, 1, 1.5), never "6×10⁻¹"."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes, laid out tight."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str, caption: str = "") -> str:
    """Markdown that embeds the PNG (a data URI): how an image shows in Dagster's metadata."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not PNG bytes")
    image = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return f"{image}\n\n{caption}" if caption else image


def empty_png(title: str, message: str, width: float = 6.0, height: float = 3.0) -> bytes:
    """A labelled empty plot: says what is missing instead of failing the asset."""
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return png_bytes(fig)


def training_curves_png(
    epochs: Sequence[Mapping[str, float]],
    best_epoch: int | None = None,
    gap_bound: float | None = None,
    title: str = "",
) -> bytes:
    """Loss, accuracy (train and validation) and their gap per epoch; the best epoch (the
    weights kept) marked, the gap bound that stops training drawn.

    Accuracies and the gap are shown in percent; non-finite values leave a hole in a line.
    """
    if not epochs:
        raise ValueError("no epochs to plot: the training history is empty")
    missing = [k for k in EPOCH_KEYS if any(k not in e for e in epochs)]
    if missing:
        raise ValueError(f"epoch records lack {', '.join(missing)}")
    frame = pd.DataFrame([{k: float(e[k]) for k in EPOCH_KEYS} for e in epochs])
    x = frame["epoch"]
    fig = new_figure(12, 3.6)
    loss, acc, gap = fig.subplots(1, 3)
    loss.plot(x, frame["train_loss"], marker="o", label="train")
    loss.plot(x, frame["val_loss"], marker="o", label="validation")
    loss.set_ylabel("loss (class-weighted cross-entropy)")
    acc.plot(x, 100 * frame["train_accuracy"], marker="o", label="train")
    acc.plot(x, 100 * frame["val_accuracy"], marker="o", label="validation")
    acc.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    acc.set_ylabel("accuracy %")
    gap.plot(x, 100 * frame["gap"], marker="o", color="tab:red", label="train − validation")
    if gap_bound is not None:
        gap.axhline(100 * gap_bound, color="black", linestyle="--", linewidth=1, label="bound")
    gap.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    gap.set_ylabel("gap, accuracy points")
    for ax in (loss, acc, gap):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="green", linestyle="--", linewidth=1, label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_xlim(float(x.min()) - 0.5, float(x.max()) + 0.5)  # the first epoch off the edge
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "training curves", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def reliability_png(table: pd.DataFrame, ece: float, title: str = "") -> bytes:
    """Observed share of ups against the mean predicted P(up) per bin, the diagonal of a
    calibrated model, and the windows per bin below; the ECE (same bins) in the title.

    The axes zoom to the occupied bins: a model that never strays far from 0.5 would
    otherwise be a dot in a corner. An empty table gives a labelled empty plot.
    """
    missing = [k for k in RELIABILITY_KEYS if k not in table.columns]
    if missing:
        raise ValueError(f"the reliability table lacks {', '.join(missing)}")
    ece_text = "n/a" if ece is None or not math.isfinite(ece) else f"{ece:.4f}"
    heading = f"{title + ': ' if title else ''}reliability, ECE {ece_text}"
    used = table[table["count"] > 0]
    if used.empty:
        return empty_png(heading, "no labelled validation window: nothing to calibrate")
    low, high = float(used["bin_low"].min()), float(used["bin_high"].max())
    fig = new_figure(6.5, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([low, high], [low, high], color="grey", linestyle="--", label="calibrated")
    top.plot(used["mean_predicted"], used["observed_up"], marker="o", label="model")
    top.set_ylabel("observed share of ups")
    observed = used["observed_up"]
    top.set_ylim(min(low, float(observed.min())) - 0.02, max(high, float(observed.max())) + 0.02)
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    top.set_title(heading, fontsize=10)
    centres = (used["bin_low"] + used["bin_high"]) / 2
    width = float((used["bin_high"] - used["bin_low"]).min()) * 0.9
    bars = bottom.bar(centres, used["count"], width=width, color="tab:blue", alpha=0.6)
    bottom.bar_label(bars, labels=[f"{int(c):,}" for c in used["count"]], fontsize=7)
    bottom.set_ylabel("windows")
    bottom.set_xlabel("predicted P(up), bins of the ECE")
    bottom.set_xlim(low, high)
    bottom.margins(y=0.25)
    fig.tight_layout()
    return png_bytes(fig)


def _pruned_panel(ax: Axes, pruned: Sequence[str]) -> None:
    ax.set_axis_off()
    lines = [f"pruned before ranking ({len(pruned)}):", *pruned] if pruned else ["none pruned"]
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace")


def importance_png(
    ranked: pd.DataFrame, pruned: Sequence[str], n_select: int, title: str = ""
) -> bytes:
    """Permutation importance of the ranked features (mean ± std across folds), selected ones
    coloured, the cut at `n_select` drawn; features pruned before ranking listed apart, since
    they have no importance to draw (not a zero).

    `ranked` has columns feature, importance_mean, importance_std, selected.
    """
    heading = title or "feature importance"
    if ranked.empty:
        return empty_png(heading, "no ranked feature")
    ranked = ranked.sort_values("importance_mean", ascending=False, kind="stable")
    height = max(3.0, 0.17 * len(ranked) + 1.2)
    fig = new_figure(10, height)
    bars, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    y = range(len(ranked))
    colours = ["tab:blue" if s else "lightgrey" for s in ranked["selected"]]
    bars.barh(
        list(y),
        ranked["importance_mean"].fillna(0.0),
        xerr=ranked["importance_std"].fillna(0.0),
        color=colours,
        error_kw={"elinewidth": 0.6, "capsize": 1.5},
    )
    bars.set_yticks(list(y), list(ranked["feature"]), fontsize=7)
    bars.set_ylim(len(ranked) - 0.5, -0.5)  # the strongest on top, no empty margins
    if 0 < n_select < len(ranked):
        bars.axhline(n_select - 0.5, color="black", linestyle="--", linewidth=0.8)
        bars.text(bars.get_xlim()[1], n_select - 0.5, f" top {n_select}", va="bottom", ha="right")
    bars.axvline(0, color="grey", linewidth=0.8)
    bars.set_xlabel("mean drop in log-loss when permuted (± std across folds); blue: selected")
    bars.grid(axis="x", alpha=0.3)
    _pruned_panel(side, pruned)
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)
