"""Decisions → the side held in each candle and the trades that makes, without a Python loop.

The per-candle state machine (enter next open, hold H, same side re-arms, opposite side
reverses, flat never closes early, no carry across a gap) collapses to one rule: the side held
during candle k is the side of the latest non-zero decision t with max(k − H, start of k's
contiguous run) ≤ t ≤ k − 1, or flat if there is none. A trade is a maximal run of candles
held on one side inside one contiguous run. That makes the whole schedule a handful of numpy
passes, which is what lets the replay run many times per walk-forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """Side held per candle and, per trade, its first and last held candle."""

    position: np.ndarray  # int8 per candle: side held from that candle's open to its close
    starts: np.ndarray  # index of the entry candle (entered at its open)
    ends: np.ndarray  # index of the last candle held
    exit_at_close: np.ndarray  # True: exit at close[end] (last candle, gap); else open[end + 1]


def _latest(flags: np.ndarray) -> np.ndarray:
    """For each index, the last index ≤ it where flags is True (-1 before the first).

    A cumulative count into the flagged positions: several times faster than
    np.maximum.accumulate, which numpy does not vectorise.
    """
    where = np.flatnonzero(flags)
    count = np.cumsum(flags, dtype=np.int32)
    if len(where) == 0:
        return np.full(len(flags), -1, dtype=np.int64)
    return np.where(count > 0, where[count - 1], -1)


def run_starts(timestamps: np.ndarray, step_ms: int) -> np.ndarray:
    """For each candle, the index of the first candle of its gap-free run."""
    steps = np.diff(timestamps)
    if np.any(steps <= 0):
        raise ValueError("candle timestamps must be strictly increasing")
    first = np.ones(len(timestamps), dtype=bool)
    first[1:] = steps != step_ms
    if not first[1:].any():  # the usual case, no gap: skip the scan
        return np.zeros(len(timestamps), dtype=np.int64)
    return _latest(first)


def held_sides(decisions: np.ndarray, starts_of_run: np.ndarray, horizon: int) -> np.ndarray:
    """The side held during each candle (see the module docstring for why this is the rule)."""
    n = len(decisions)
    idx = np.arange(n)
    latest = _latest(decisions != 0)
    acting = np.empty(n, dtype=np.int64)  # latest non-zero decision known before candle k opens
    acting[:1] = -1
    acting[1:] = latest[:-1]
    live = acting >= np.maximum(idx - horizon, starts_of_run)
    return np.where(live, decisions[acting], 0).astype(np.int8)


def schedule(decisions: np.ndarray, timestamps: np.ndarray, step_ms: int, horizon: int) -> Schedule:
    n = len(decisions)
    starts_of_run = run_starts(timestamps, step_ms)
    position = held_sides(decisions, starts_of_run, horizon)
    idx = np.arange(n)
    held = position != 0
    # run_break[k]: candle k + 1 does not continue candle k's run (gap after k, or k is last).
    run_break = np.ones(n, dtype=bool)
    run_break[:-1] = starts_of_run[1:] == idx[1:]
    changes = np.ones(n, dtype=bool)  # changes[k]: the side differs from candle k - 1's
    changes[1:] = position[1:] != position[:-1]
    begins = held & (changes | (starts_of_run == idx))
    finishes = held & (np.append(changes[1:], True) | run_break)
    ends = np.flatnonzero(finishes)
    return Schedule(
        position=position,
        starts=np.flatnonzero(begins),
        ends=ends,
        exit_at_close=run_break[ends],
    )
