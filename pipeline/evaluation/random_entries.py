"""Random entries at the same coverage and with the same exits: the nulls a strategy must beat.

Two nulls, each replayed with the same label exits, costs and funding:

- `uniform`: in every market, as many decisions as the strategy made there, at candles drawn
  uniformly without replacement, each long or short with equal odds. Scattered decisions
  re-arm and reverse more often than a model's clustered ones, so this null trades more and
  pays more fees than the strategy: a strict floor, not a fair match.
- `same_candles`: the strategy's own decision candles, each given a random side (one side per
  run of consecutive decisions of the strategy, so runs stay runs): the same timing, coverage
  and holding, only the direction drawn by chance. Beating it says the sides carry skill.

The strategy's percentile among each null's draws (pooled net Sharpe and net return) is
reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import BacktestResult, market_arrays, replay_arrays
from pipeline.backtest.metrics import equity_metrics
from pipeline.backtest.pool import pool_metrics


def random_entries(
    candles: dict[str, pd.DataFrame],
    strategy: dict[str, BacktestResult],
    cfg: BacktestConfig,
    *,
    draws: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Per null: pooled Sharpe, net return and trades of `draws` random strategies, and
    `strategy`'s percentiles. `candles` are the markets' candles, cut to the replayed span."""
    rng = np.random.default_rng(seed)
    inputs, decided = {}, {}
    for market, run in strategy.items():
        stamps = run.timestamps
        frame = candles[market]
        period = frame[frame["timestamp"].between(stamps[0], stamps[-1])].reset_index(drop=True)
        inputs[market] = market_arrays(period, cfg)
        decided[market] = run.decisions
    lengths = {len(a.timestamp) for a in inputs.values()}
    if len(lengths) != 1:
        raise ValueError("random entries need the markets' candles on one grid (same span)")
    (n,) = lengths
    first = next(iter(inputs.values())).timestamp
    span = int(first[-1] - first[0]) + cfg.step_ms
    pooled = pool_metrics(strategy)
    out: dict[str, object] = {"draws": draws}
    for null in ("uniform", "same_candles"):
        sharpe, total, trades = np.empty(draws), np.empty(draws), np.empty(draws)
        for i in range(draws):
            curves, count = [], 0
            for market, arrays in inputs.items():
                d = _draw(null, decided[market], n, rng)
                done = replay_arrays(arrays, d, cfg)
                curves.append(done.equity)
                count += len(done.rows)
            figures = equity_metrics(np.mean(curves, axis=0), span, cfg.periods_per_year)
            # A ruined draw has no Sharpe (metrics.py): it ranks below every other.
            ratio = figures["sharpe"]
            sharpe[i] = ratio if np.isfinite(ratio) else -np.inf
            total[i], trades[i] = figures["total_return"], count
        out[null] = {
            "sharpe": _spread(sharpe),
            "total_return": _spread(total),
            "trades": _spread(trades),
            "sharpe_percentile": float(100 * np.mean(sharpe < pooled["sharpe"])),
            "total_return_percentile": float(100 * np.mean(total < pooled["total_return"])),
        }
    out["decisions_per_market"] = {m: int(np.count_nonzero(d)) for m, d in decided.items()}
    return out


def _draw(null: str, decisions: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    d = np.zeros(n, dtype=np.int8)
    where = np.flatnonzero(decisions)
    if null == "uniform":
        at = rng.choice(n, size=len(where), replace=False)
        d[at] = rng.choice(np.array([-1, 1], dtype=np.int8), size=len(at))
        return d
    # One random side per run of consecutive decision candles (a run re-arms one position).
    starts = np.ones(len(where), dtype=bool)
    starts[1:] = np.diff(where) > 1
    run_id = np.cumsum(starts) - 1
    sides = rng.choice(np.array([-1, 1], dtype=np.int8), size=int(starts.sum()))
    d[where] = sides[run_id]
    return d


def _spread(values: np.ndarray) -> dict[str, float]:
    low, median, high = np.percentile(values, [2.5, 50, 97.5])
    return {"median": float(median), "p2_5": float(low), "p97_5": float(high)}
