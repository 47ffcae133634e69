"""`decide` is `decide_one` repeated: the backtest's weights are the ones live trading gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide, decide_one, decide_segments
from pipeline.portfolio.rebalance import LayerState
from pipeline.portfolio.weights import target_weights
from tests.portfolio.strategies import configs, histories


def live(scores, vol, cfgs, state=None):
    """A live process: one decision per run, the state stored as JSON in between."""
    t_count, m = scores.shape
    stored = json.dumps((state or LayerState.initial(m)).to_json())
    targets, orders, raw = [], [], []
    for t in range(t_count):
        w, o, r, nxt = decide_one(
            scores[t], vol[t], cfgs[t], LayerState.from_json(json.loads(stored))
        )
        stored = json.dumps(nxt.to_json())
        targets.append(w)
        orders.append(o)
        raw.append(r)
    return (
        np.array(targets),
        np.array(orders),
        np.array(raw),
        LayerState.from_json(json.loads(stored)),
    )


def same_bits(got: PortfolioDecisions, want) -> None:
    targets, orders, raw, state = want
    assert got.targets.tobytes() == targets.tobytes()
    assert got.orders.tobytes() == orders.tobytes()
    assert got.raw.tobytes() == raw.tobytes()
    assert got.state.standing.tobytes() == state.standing.tobytes()
    assert got.state.since.tobytes() == state.since.tobytes()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(histories(), configs)
def test_decide_is_decide_one_repeated_through_a_stored_state(history, cfg) -> None:
    scores, vol = history
    got = decide(scores, vol, cfg)
    same_bits(got, live(scores, vol, [cfg] * len(scores)))
    assert got.targets.shape == got.raw.shape == scores.shape and got.orders.dtype == bool
    for t in range(len(scores)):  # raw is the stateless weight of each decision
        assert got.raw[t].tobytes() == target_weights(scores[t], vol[t], cfg).tobytes()


@settings(max_examples=100, deadline=None, derandomize=True)
@given(histories(max_times=30), configs, configs, st.data())
def test_segments_carry_the_state_across_configs(history, first, second, data) -> None:
    scores, vol = history
    cut = data.draw(st.integers(1, len(scores)))
    segments = [(cut, first)] if cut == len(scores) else [(cut, first), (len(scores), second)]
    got = decide_segments(scores, vol, segments)
    cfgs = [first] * cut + [second] * (len(scores) - cut)
    same_bits(got, live(scores, vol, cfgs))


def test_resuming_from_a_state_continues_the_history() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(-1, 1, (40, 4))
    vol = rng.uniform(0.2, 1.0, (40, 4))
    cfg = PortfolioConfig(band=0.03, min_hold=3, gross_cap=1.0)
    whole = decide(scores, vol, cfg)
    head = decide(scores[:25], vol[:25], cfg)
    tail = decide(scores[25:], vol[25:], cfg, head.state)
    assert np.concatenate([head.targets, tail.targets]).tobytes() == whole.targets.tobytes()
    assert np.concatenate([head.orders, tail.orders]).tobytes() == whole.orders.tobytes()
    assert tail.state == whole.state


def test_a_small_history_by_hand() -> None:
    # One market, vol 0.4, target vol 0.4, one sleeve: raw = score (cap 2).
    scores = np.array([[0.5], [0.52], [np.nan], [-0.3]])
    d = decide(scores, np.full((4, 1), 0.4), PortfolioConfig(band=0.05))
    np.testing.assert_allclose(d.raw[:, 0], [0.5, 0.52, 0.0, -0.3], rtol=1e-15)
    assert d.orders[:, 0].tolist() == [True, False, True, True]
    np.testing.assert_allclose(d.targets[:, 0], [0.5, 0.5, 0.0, -0.3], rtol=1e-15)
    assert d.state.since.tolist() == [0]


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="2-D"):
        decide(np.zeros(3), np.zeros(3), PortfolioConfig())
    with pytest.raises(ValueError, match="differ in shape"):
        decide(np.zeros((3, 2)), np.zeros((3, 3)), PortfolioConfig())
    empty = decide(np.zeros((0, 2)), np.zeros((0, 2)), PortfolioConfig())
    assert empty.targets.shape == (0, 2) and empty.state == LayerState.initial(2)


@pytest.mark.parametrize("ends", [[], [2], [3, 3, 5], [0, 5], [4, 6]])
def test_segments_must_cover_the_history_in_order(ends) -> None:
    with pytest.raises(ValueError, match="segment"):
        decide_segments(np.zeros((5, 2)), np.ones((5, 2)), [(e, PortfolioConfig()) for e in ends])
