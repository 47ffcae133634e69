"""The portfolio layer over time: one decision (`decide_one`, live) and a whole history (`decide`).

`decide` is a loop over `decide_one` and nothing else, so a live process holding only the last
`LayerState` gets the weights the backtest and the walk-forward evaluation got, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.rebalance import LayerState, rebalance
from pipeline.portfolio.weights import target_weights


@dataclass(frozen=True, eq=False)
class PortfolioDecisions:
    """Every decision of a history, rows = decision times, columns = markets."""

    targets: np.ndarray  # float[T, M]: standing targets after each decision
    orders: np.ndarray  # bool[T, M]: ordered at t (filled at the next open by the backtest)
    raw: np.ndarray  # float[T, M]: target_weights before the band and the min hold
    state: LayerState  # after the last decision: where the next segment or live resumes


def decide_one(
    scores: np.ndarray, vol: np.ndarray, cfg: PortfolioConfig, state: LayerState
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LayerState]:
    """One decision time, the live entry point: (targets, orders, raw, next state)."""
    raw = target_weights(scores, vol, cfg)
    orders, targets, next_state = rebalance(raw, state, cfg)
    return targets, orders, raw, next_state


def _as_panel(name: str, values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"{name} must be [decision times, markets] (2-D), got shape {out.shape}")
    return out


def decide(
    scores: np.ndarray,
    vol: np.ndarray,
    cfg: PortfolioConfig,
    state: LayerState | None = None,
) -> PortfolioDecisions:
    """Every decision of `scores[T, M]`, `vol[T, M]` in order, from `state` (None: initial)."""
    s, v = _as_panel("scores", scores), _as_panel("vol", vol)
    if s.shape != v.shape:
        raise ValueError(f"scores {s.shape} and vol {v.shape} differ in shape")
    t_count, m = s.shape
    state = LayerState.initial(m) if state is None else state
    targets = np.zeros((t_count, m))
    orders = np.zeros((t_count, m), dtype=bool)
    raw = np.zeros((t_count, m))
    for t in range(t_count):
        targets[t], orders[t], raw[t], state = decide_one(s[t], v[t], cfg, state)
    return PortfolioDecisions(targets=targets, orders=orders, raw=raw, state=state)


def decide_segments(
    scores: np.ndarray,
    vol: np.ndarray,
    segments: Sequence[tuple[int, PortfolioConfig]],
    state: LayerState | None = None,
) -> PortfolioDecisions:
    """Consecutive segments, each with its own config, the state carried across them.

    `segments`: (end index, exclusive; config) in order; the first starts at row 0 and the last
    must end at the last row, so no decision is silently left out. Walk-forward folds use it.
    """
    s, v = _as_panel("scores", scores), _as_panel("vol", vol)
    if s.shape != v.shape:
        raise ValueError(f"scores {s.shape} and vol {v.shape} differ in shape")
    if not segments:
        raise ValueError("no segment given")
    ends = [end for end, _ in segments]
    if any(b <= a for a, b in zip([0, *ends], ends, strict=False)) or ends[-1] != s.shape[0]:
        raise ValueError(
            f"segment ends must increase strictly from above 0 to {s.shape[0]}, got {ends}"
        )
    parts = []
    start = 0
    for end, cfg in segments:
        part = decide(s[start:end], v[start:end], cfg, state)
        parts.append(part)
        state, start = part.state, end
    return PortfolioDecisions(
        targets=np.concatenate([p.targets for p in parts]),
        orders=np.concatenate([p.orders for p in parts]),
        raw=np.concatenate([p.raw for p in parts]),
        state=parts[-1].state,
    )
