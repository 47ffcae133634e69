"""The baselines every portfolio figure stands beside, through the same layer, costs and
funding: the daily trend rule, cross-sectional momentum, equal-weight buy-and-hold, and random
scores through a scorer's own operating points (the null)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.evaluation.portfolio_replay import Replayer
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide, decide_segments
from pipeline.portfolio.rules import momentum_scores, trend_scores

TREND, MOMENTUM, BUY_AND_HOLD, RANDOM = "trend", "xs_momentum", "buy_and_hold", "random"
RULES = (TREND, MOMENTUM)
# The daily trend rule: each market's sleeve (1/N of the capital) scaled to 40 %
# annual volatility by its 30-day σ, capped at 2× the sleeve, every score held.
TREND_PORTFOLIO = PortfolioConfig(target_vol=0.40, selection="all", conviction=True)
# Cross-sectional momentum: market-neutral, long the strongest and short the weakest.
MOMENTUM_PORTFOLIO = PortfolioConfig(
    target_vol=0.40, selection="top_k", top_k=1, neutral=True, conviction=False
)


def buy_and_hold(n: int, markets: int) -> PortfolioDecisions:
    """Equal weights ordered at the first decision and never again."""
    cfg = PortfolioConfig(
        selection="all", conviction=False, sizing="equal", long_only=True, min_hold=n + 1
    )
    return decide(np.ones((n, markets)), np.ones((n, markets)), cfg)


def reference_decisions(replayer: Replayer, rows: np.ndarray) -> dict[str, PortfolioDecisions]:
    """The rules and buy-and-hold over `rows` of the panel (scores from the candles up to
    each row: the rules read nothing later)."""
    close, tf, vol = replayer.panel.close, replayer.timeframe, replayer.vol[rows]
    return {
        TREND: decide(trend_scores(close, tf)[rows], vol, TREND_PORTFOLIO),
        MOMENTUM: decide(momentum_scores(close, tf)[rows], vol, MOMENTUM_PORTFOLIO),
        BUY_AND_HOLD: buy_and_hold(len(rows), len(replayer.markets)),
    }


def random_sharpes(
    replayer: Replayer,
    rows: np.ndarray,
    segments: Sequence[tuple[int, PortfolioConfig]],
    draws: int,
    seed: int,
) -> np.ndarray:
    """Net Sharpe of `draws` random score panels (uniform in [−1, 1]) through `segments` (a
    scorer's own operating points); a liquidated draw counts as −∞."""
    rng = np.random.default_rng(seed)
    vol = replayer.vol[rows]
    out = np.empty(draws)
    for i in range(draws):
        scores = rng.uniform(-1.0, 1.0, size=vol.shape)
        value = replayer.run(rows, decide_segments(scores, vol, segments)).metrics.get("sharpe")
        out[i] = float(value) if value is not None and np.isfinite(value) else -np.inf
    return out


def percentile(values: np.ndarray, value: float) -> float:
    """Where `value` stands among `values` (ties count half)."""
    return float(100.0 * np.mean(values < value) + 50.0 * np.mean(values == value))
