"""Hypothesis strategies shared by the portfolio tests: configs, score and volatility panels."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.portfolio.config import SELECTIONS, PortfolioConfig

NAN = float("nan")

score_values = st.one_of(
    st.floats(-1.0, 1.0),
    st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, NAN]),
)
vol_values = st.one_of(
    st.floats(0.01, 5.0),
    st.sampled_from([NAN, 0.0, float("inf"), -0.2, 0.4]),
)


def optional(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), values)


configs = st.builds(
    PortfolioConfig,
    target_vol=st.floats(0.05, 2.0),
    markets=optional(st.integers(1, 10)),
    conviction=st.booleans(),
    neutral=st.booleans(),
    selection=st.sampled_from(SELECTIONS),
    threshold=st.floats(0.0, 1.0),
    top_k=st.integers(1, 4),
    market_cap=optional(st.floats(0.01, 3.0)),
    gross_cap=optional(st.floats(0.01, 3.0)),
    net_cap=optional(st.one_of(st.just(0.0), st.floats(0.0, 2.0))),
    long_only=st.booleans(),
    band=st.one_of(st.just(0.0), st.floats(0.0, 0.3)),
    min_hold=st.integers(0, 4),
)


@st.composite
def one_decision(draw, max_markets: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Scores and volatilities of 1–`max_markets` markets at one decision time."""
    m = draw(st.integers(1, max_markets))
    scores = draw(hnp.arrays(np.float64, m, elements=score_values))
    vol = draw(hnp.arrays(np.float64, m, elements=vol_values))
    return scores, vol


@st.composite
def histories(draw, max_times: int = 25, max_markets: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Score and volatility panels [T, M]."""
    t, m = draw(st.integers(1, max_times)), draw(st.integers(1, max_markets))
    scores = draw(hnp.arrays(np.float64, (t, m), elements=score_values))
    vol = draw(hnp.arrays(np.float64, (t, m), elements=vol_values))
    return scores, vol
