"""`risk.target_side` (live) is the backtest's time-exit rule seen one candle at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.backtest import BacktestConfig, run_backtest
from pipeline.execution.risk import target_side

STEP = 3_600_000
T0 = 1_677_628_800_000  # 2023-03-01T00:00Z


@st.composite
def candle_grids(draw):
    """Decisions in {-1, 0, 1} on a candle grid with random gaps, and a horizon 1–5."""
    n = draw(st.integers(min_value=1, max_value=40))
    # Mostly contiguous; a 2 or 3 leaves one or two candles out.
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 3]), min_size=n - 1, max_size=n - 1))
    decisions = draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=n, max_size=n))
    horizon = draw(st.integers(min_value=1, max_value=5))
    times = T0 + STEP * np.concatenate([[0], np.cumsum(steps, dtype=np.int64)]).astype(np.int64)
    return times, np.array(decisions, dtype=np.int8), horizon


@settings(max_examples=400, deadline=None)
@given(candle_grids())
def test_target_side_is_the_side_the_backtest_holds_in_the_next_candle(grid) -> None:
    times, decisions, horizon = grid
    price = 100.0 + np.arange(len(times))
    frame = pd.DataFrame(
        {"timestamp": times, "open": price, "high": price + 1, "low": price - 1, "close": price}
    )
    # Without barriers the replay exits by time only: the rule live trading executes.
    held = run_backtest(frame, decisions, BacktestConfig(horizon=horizon)).position.to_numpy()
    present = {int(t) for t in times}
    by_candle = {int(t): int(d) for t, d in zip(times, decisions, strict=True)}
    for k in range(len(times) - 1):
        if times[k + 1] - times[k] != STEP:
            continue  # across a gap the backtest holds nothing; live trades the next open
        live = target_side(by_candle, int(times[k]), STEP, horizon, present)
        assert live == held[k + 1], (k, horizon)


@settings(max_examples=200, deadline=None)
@given(candle_grids())
def test_only_the_decisions_in_the_window_matter(grid) -> None:
    """The manager asks the store for the last `horizon` candles only: the same answer."""
    times, decisions, horizon = grid
    present = {int(t) for t in times}
    by_candle = {int(t): int(d) for t, d in zip(times, decisions, strict=True)}
    for t in times:
        first = int(t) - (horizon - 1) * STEP
        window = {c: d for c, d in by_candle.items() if first <= c <= t}
        near = {c for c in present if first <= c <= t}
        assert target_side(window, int(t), STEP, horizon, near) == target_side(
            by_candle, int(t), STEP, horizon, present
        )


def test_examples() -> None:
    h = STEP
    present = {0, h, 2 * h, 4 * h}  # 3h missing
    sides = {0: 1, h: 0, 2 * h: 0, 4 * h: 0}
    assert target_side(sides, 2 * h, h, 3, present) == 1  # the long still holds
    assert target_side(sides, 2 * h, h, 2, present) == 0  # past its horizon
    assert target_side({**sides, h: -1}, 2 * h, h, 3, present) == -1  # latest decision wins
    assert target_side({0: 1, 4 * h: 0}, 4 * h, h, 5, present) == 0  # a gap voids what came before
    assert target_side({}, 4 * h, h, 5, present) == 0  # no decision recorded: flat
