"""Random entries at the same coverage and with the same exits: the null a strategy must beat.

Each draw makes, in every market, as many decisions as the strategy made there, at candles
drawn uniformly without replacement, each long or short with equal odds, and replays them
with the same label exits, costs and funding. The strategy's percentile among the draws (on
pooled net Sharpe and net return) says how much of its figure timing and side explain, and
how much any entry at that rate would have made (holding on a rising market, say).
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
    """Pooled Sharpe and net return of `draws` random strategies, and `strategy`'s percentiles.

    `candles` are the markets' candles; each is cut to the strategy's replayed span.
    """
    rng = np.random.default_rng(seed)
    inputs, counts = {}, {}
    for market, run in strategy.items():
        stamps = run.position.index.asi8 // 1_000_000
        frame = candles[market]
        period = frame[frame["timestamp"].between(stamps[0], stamps[-1])].reset_index(drop=True)
        inputs[market] = market_arrays(period, cfg)
        counts[market] = round(run.metrics["coverage"] * len(period))
    lengths = {len(a.timestamp) for a in inputs.values()}
    if len(lengths) != 1:
        raise ValueError("random entries need the markets' candles on one grid (same span)")
    (n,) = lengths
    first = next(iter(inputs.values())).timestamp
    span = int(first[-1] - first[0]) + cfg.step_ms
    sharpe, total = np.empty(draws), np.empty(draws)
    for i in range(draws):
        curves = []
        for market, arrays in inputs.items():
            d = np.zeros(n, dtype=np.int8)
            at = rng.choice(n, size=min(counts[market], n), replace=False)
            d[at] = rng.choice(np.array([-1, 1], dtype=np.int8), size=len(at))
            curves.append(replay_arrays(arrays, d, cfg).equity)
        figures = equity_metrics(np.mean(curves, axis=0), span, cfg.periods_per_year)
        sharpe[i], total[i] = figures["sharpe"], figures["total_return"]
    pooled = pool_metrics(strategy)
    return {
        "draws": draws,
        "decisions_per_market": counts,
        "sharpe": _spread(sharpe),
        "total_return": _spread(total),
        "sharpe_percentile": float(100 * np.mean(sharpe < pooled["sharpe"])),
        "total_return_percentile": float(100 * np.mean(total < pooled["total_return"])),
    }


def _spread(values: np.ndarray) -> dict[str, float]:
    low, median, high = np.percentile(values, [2.5, 50, 97.5])
    return {"median": float(median), "p2_5": float(low), "p97_5": float(high)}
