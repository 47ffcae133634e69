"""Replay engines (one market at a time; several sharing one equity), metrics and reports
(no Dagster)."""

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import (
    BacktestResult,
    always_long_decisions,
    buy_and_hold,
    run_backtest,
)
from pipeline.backtest.panel import Panel, panel
from pipeline.backtest.pool import pool_equity, pool_metrics
from pipeline.backtest.portfolio import PortfolioCosts, PortfolioResult, run_portfolio_backtest

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Panel",
    "PortfolioCosts",
    "PortfolioResult",
    "always_long_decisions",
    "buy_and_hold",
    "panel",
    "pool_equity",
    "pool_metrics",
    "run_backtest",
    "run_portfolio_backtest",
]
