"""Choosing a scorer's portfolio operating point on one half of validation, judged on the other.

The rule, fixed before any look: validation's decision candles are cut in two halves in time.
On the first (`choose`), for each coverage in `COVERAGES` (the share of validation scores
whose |score| is held: 1.0 holds every score, 0.35 only the top 35 % by conviction, the seed's
0.65-confidence filter), the threshold is fitted on that half's scores, the half is replayed
through the portfolio layer and the portfolio backtest (costs and funding), and the option with
the best net Sharpe among those with at least `min_trades` fills is kept (none: the one with
the most fills, and the choice says so). The second half (`judge`), which chose nothing, is
then replayed with the kept option: its figures are what the gate and the default rule read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.portfolio.config import PortfolioConfig

COVERAGES = (1.0, 0.5, 0.35, 0.2)
MIN_TRADES = 10

# A replay of scores over one span: scores [T, M] and settings → the backtest's figures.
Replay = Callable[[np.ndarray, PortfolioConfig], dict[str, Any]]


@dataclass(frozen=True)
class PortfolioChoice:
    coverages: tuple[float, ...] = COVERAGES
    min_trades: int = MIN_TRADES


@dataclass(frozen=True)
class ChosenPortfolio:
    config: PortfolioConfig
    coverage: float
    options: list[dict[str, Any]]  # every option's figures on the choosing half
    enough_trades: bool


def threshold_for(scores: np.ndarray, coverage: float) -> float:
    """|score| above which `coverage` of the finite scores lie (0 for coverage 1)."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    size = np.abs(scores[np.isfinite(scores)])
    if coverage == 1 or size.size == 0:
        return 0.0
    return float(np.quantile(size, 1.0 - coverage))


def _sharpe(figures: dict[str, Any]) -> float:
    value = figures.get("sharpe")
    return float(value) if value is not None and math.isfinite(value) else -math.inf


def choose_portfolio(
    scores: np.ndarray, base: PortfolioConfig, replay: Replay, choice: PortfolioChoice
) -> ChosenPortfolio:
    """The option with the best net Sharpe on `scores` (the choosing half); see the module."""
    options, configs = [], []
    for coverage in choice.coverages:
        cfg = replace(base, selection="threshold", threshold=threshold_for(scores, coverage))
        figures = replay(scores, cfg)
        configs.append(cfg)
        options.append({"coverage": coverage, "threshold": cfg.threshold, **figures})
    enough = [i for i, o in enumerate(options) if o.get("trades", 0) >= choice.min_trades]
    if enough:
        best = max(enough, key=lambda i: (_sharpe(options[i]), options[i]["coverage"]))
    else:
        best = max(range(len(options)), key=lambda i: options[i].get("trades", 0))
    for i, option in enumerate(options):
        option["chosen"] = i == best
    return ChosenPortfolio(configs[best], choice.coverages[best], options, bool(enough))


def halves(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validation's decision rows cut in two halves in time: (choose, judge)."""
    rows = np.asarray(rows)
    if len(rows) < 4:
        raise ValueError(f"validation has {len(rows)} decision candles: too few to halve")
    middle = len(rows) // 2
    return rows[:middle], rows[middle:]
