"""`rebalance` and `LayerState`: the no-trade band, the minimum hold, the stored state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.rebalance import NEVER, LayerState, rebalance


def state(standing, since=None) -> LayerState:
    standing = np.array(standing, float)
    return LayerState(standing, np.full(len(standing), NEVER) if since is None else since)


def test_initial_state() -> None:
    s = LayerState.initial(3)
    assert s.standing.tolist() == [0.0, 0.0, 0.0] and s.since.tolist() == [NEVER] * 3


def test_band_orders_only_moves_beyond_it() -> None:
    # |diff| = 0.04, 0.06, 0.05 (not > 0.05), 0.2.
    orders, standing, nxt = rebalance(
        np.array([0.14, 0.16, 0.05, 0.0]), state([0.1, 0.1, 0.0, 0.2]), PortfolioConfig(band=0.05)
    )
    assert orders.tolist() == [False, True, False, True]
    assert standing.tolist() == [0.1, 0.16, 0.0, 0.0]
    assert nxt.standing.tolist() == standing.tolist()
    assert nxt.since.tolist() == [NEVER, 0, NEVER, 0]


def test_an_exit_within_the_band_is_not_traded() -> None:
    orders, standing, _ = rebalance(np.array([0.0]), state([0.03]), PortfolioConfig(band=0.05))
    assert orders.tolist() == [False] and standing.tolist() == [0.03]


def test_zero_band_orders_every_change_and_nothing_else() -> None:
    orders, standing, _ = rebalance(
        np.array([0.2, 0.1, 0.0]), state([0.2, 0.0, 0.0]), PortfolioConfig()
    )
    assert orders.tolist() == [False, True, False] and standing.tolist() == [0.2, 0.1, 0.0]


def run(targets, cfg) -> tuple[list[bool], list[float], list[int]]:
    s, orders, standing, since = LayerState.initial(1), [], [], []
    for t in targets:
        o, w, s = rebalance(np.array([t]), s, cfg)
        orders.append(bool(o[0]))
        standing.append(float(w[0]))
        since.append(int(s.since[0]))
    return orders, standing, since


def test_min_hold_keeps_the_standing_target_until_it_has_passed() -> None:
    targets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.0]
    orders, standing, since = run(targets, PortfolioConfig(min_hold=3))
    assert orders == [True, False, False, True, False, False, True]
    assert standing == [0.1, 0.1, 0.1, 0.4, 0.4, 0.4, 0.0]  # the exit waits too
    assert since == [0, 1, 2, 0, 1, 2, 0]


def test_min_hold_zero_and_one_are_the_same() -> None:
    targets = [0.1, 0.2, 0.2, 0.0, 0.3]
    assert run(targets, PortfolioConfig(min_hold=0)) == run(targets, PortfolioConfig(min_hold=1))
    assert run(targets, PortfolioConfig(min_hold=1))[0] == [True, True, False, True, True]


def test_band_and_min_hold_together() -> None:
    orders, standing, _ = run([0.1, 0.3, 0.12, 0.3, 0.31], PortfolioConfig(band=0.05, min_hold=2))
    assert orders == [True, False, False, True, False]
    assert standing == [0.1, 0.1, 0.1, 0.3, 0.3]


def test_since_saturates_instead_of_overflowing() -> None:
    _, _, nxt = rebalance(np.array([0.0]), state([0.0]), PortfolioConfig())
    assert nxt.since.tolist() == [NEVER]


def test_state_json_round_trip_is_bit_exact() -> None:
    s = LayerState(np.array([0.1 + 0.2, -1 / 3, 1e-300, -0.0]), np.array([0, 5, NEVER, 2]))
    back = LayerState.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s
    assert back.standing.tobytes() == s.standing.tobytes()
    assert back.since.dtype == np.int64 and back.since.tobytes() == s.since.tobytes()
    assert not np.signbit(s.standing[3])  # −0.0 is kept as 0.0 (PostgreSQL numeric has no −0)


def test_state_is_read_only_and_validated() -> None:
    s = LayerState.initial(2)
    with pytest.raises(ValueError):
        s.standing[0] = 1.0
    with pytest.raises(ValueError, match="equal 1-D"):
        LayerState(np.zeros(2), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="finite"):
        LayerState(np.array([np.nan]), np.array([0]))
    with pytest.raises(ValueError, match="≥ 0"):
        LayerState(np.array([0.0]), np.array([-1]))
    with pytest.raises(ValueError, match="state of 2 markets"):
        rebalance(np.zeros(3), s, PortfolioConfig())
    with pytest.raises(ValueError, match="finite"):
        rebalance(np.array([np.nan, 0.0]), s, PortfolioConfig())


@st.composite
def moves_inside_the_band(draw):
    m = draw(st.integers(1, 8))
    band = draw(st.floats(1e-6, 0.5))
    standing = draw(hnp.arrays(np.float64, m, elements=st.floats(-2.0, 2.0)))
    fraction = draw(hnp.arrays(np.float64, m, elements=st.floats(-0.99, 0.99)))
    since = draw(hnp.arrays(np.int64, m, elements=st.integers(0, NEVER)))
    return standing, standing + fraction * band, since, band


@settings(max_examples=300, deadline=None, derandomize=True)
@given(moves_inside_the_band(), st.integers(0, 5))
def test_nothing_is_ordered_when_every_target_moves_less_than_the_band(case, min_hold) -> None:
    standing, targets, since, band = case
    before = LayerState(standing, since)
    orders, after, nxt = rebalance(targets, before, PortfolioConfig(band=band, min_hold=min_hold))
    assert not orders.any()
    assert after.tobytes() == before.standing.tobytes()
    assert nxt.since.tolist() == np.minimum(since + 1, NEVER).tolist()
