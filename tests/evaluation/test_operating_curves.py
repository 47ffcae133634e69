"""The operating options carry the counts their intervals need, and the table and curve
show precision (Wilson) and net return per trade (bootstrap) against coverage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest.config import BacktestConfig
from pipeline.evaluation.curves import operating_curve_png, options_table, precision_wilson
from pipeline.evaluation.operating_choice import Segment, replay_figures
from pipeline.model.operating import sides
from pipeline.reporting.plots import PNG_SIGNATURE
from pipeline.stats import wilson_interval


def _segment(frames: dict[str, pd.DataFrame], n: int = 600) -> Segment:
    rng = np.random.default_rng(1)
    markets, stamps = [], []
    for market in ("BTCUSDT", "ETHUSDT"):
        ts = pd.to_datetime(frames[market]["timestamp"].iloc[1000 : 1000 + n], unit="ms", utc=True)
        markets += [market] * n
        stamps += list(ts)
    label = rng.integers(0, 2, 2 * n).astype(float)
    label[::17] = np.nan  # unresolved labels: no precision to count
    return Segment(
        market=np.array(markets),
        timestamp=pd.DatetimeIndex(stamps),
        scale=np.full(2 * n, 0.01),
        p_up=rng.uniform(0.3, 0.7, 2 * n),
        label=label,
    )


def test_replay_figures_carry_the_counts_of_their_intervals(sample_frames) -> None:
    segment = _segment(sample_frames)
    side = sides(segment.p_up, 0.62)
    figures = replay_figures(sample_frames, segment, side, BacktestConfig(horizon=1))
    traded = side != 0
    labelled = traded & np.isfinite(segment.label)
    assert figures["signals"] == int(traded.sum())
    assert figures["signal_share"] == pytest.approx(traded.mean())
    assert figures["labelled"] == int(labelled.sum()) < figures["signals"]
    successes = figures["precision"] * figures["labelled"]
    assert successes == pytest.approx(round(successes))  # a share of a count
    assert figures["trades"] > 0
    low, high = figures["mean_net_return_ci95"]
    assert low <= figures["mean_net_return"] <= high


def _option(coverage: float, ev: bool, chosen: bool = False, **extra: object) -> dict:
    return {
        "coverage": coverage,
        "ev_filter": ev,
        "threshold": 0.5 + coverage / 2,
        "signals": 400,
        "signal_share": coverage * (0.6 if ev else 1.0),
        "labelled": 380,
        "precision": 0.55,
        "precision_ci95": [0.5, 0.6],
        "trades": 300,
        "net_win_rate": 0.48,
        "net_win_rate_ci95": [0.43, 0.53],
        "mean_net_return": -0.0004,
        "mean_net_return_ci95": [-0.0012, 0.0005],
        "total_return": -0.11,
        "sharpe": -0.8,
        "max_drawdown": 0.2,
        "profit_factor": 0.9,
        "chosen": chosen,
        **extra,
    }


OPTIONS = [
    _option(c, ev, chosen=(c, ev) == (0.2, True)) for c in (0.05, 0.1, 0.2) for ev in (False, True)
]


def test_options_table_shows_wilson_and_bootstrap_intervals() -> None:
    table = options_table(OPTIONS)
    lines = table.splitlines()
    assert len(lines) == 2 + len(OPTIONS) and table.count("◀") == 1
    assert all(line.count("|") - 1 <= 12 for line in lines)  # 11 columns
    low, high = wilson_interval(round(0.55 * 380), 380)
    assert f"55.0 [{100 * low:.1f}, {100 * high:.1f}]" in lines[2]
    assert "-0.04 [-0.12, +0.05]" in lines[2]
    assert precision_wilson(OPTIONS[0]) == (low, high)


def test_options_stored_before_the_counts_show_no_interval() -> None:
    old = {k: v for k, v in OPTIONS[0].items() if k not in ("labelled", "mean_net_return")}
    old.update(sharpe=None, profit_factor=None)  # NaN comes back from JSON as null
    row = options_table([old]).splitlines()[2]
    assert "| 55.0 |" in row and "| – |" in row
    assert precision_wilson(old) is None


def test_operating_curve_is_a_png_and_an_empty_one_says_so(tmp_path: Path) -> None:
    path = operating_curve_png(OPTIONS, tmp_path / "a" / "curve.png", "model 1")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    fixed = _option(math.nan, False, chosen=True, signal_share=None)
    empty = operating_curve_png([fixed], tmp_path / "empty.png", "model 2")
    assert empty.read_bytes().startswith(PNG_SIGNATURE)
    # A fixed threshold has no nominal coverage: it sits at the share it traded.
    fixed = _option(math.nan, False, chosen=True, signal_share=0.03)
    traded = operating_curve_png([fixed], tmp_path / "f.png", "m")
    assert traded.read_bytes().startswith(PNG_SIGNATURE)
