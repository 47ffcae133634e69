"""The portfolio layer: every market's score at a decision time → target weights.

Pure (numpy only, no Dagster, no torch): the backtest, `signals evaluate`, the Dagster assets
and live execution all call this one path, so what is evaluated is what trades. The rules are
in `pipeline.portfolio.config`.
"""

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide, decide_one, decide_segments
from pipeline.portfolio.rebalance import LayerState, rebalance
from pipeline.portfolio.volatility import annual_volatility
from pipeline.portfolio.weights import target_weights

__all__ = [
    "LayerState",
    "PortfolioConfig",
    "PortfolioDecisions",
    "annual_volatility",
    "decide",
    "decide_one",
    "decide_segments",
    "rebalance",
    "target_weights",
]
