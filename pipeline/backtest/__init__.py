"""Replay engine, metrics and reports for decisions on one market at a time (no Dagster)."""

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import (
    BacktestResult,
    always_long_decisions,
    buy_and_hold,
    run_backtest,
)
from pipeline.backtest.pool import pool_equity, pool_metrics

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "always_long_decisions",
    "buy_and_hold",
    "pool_equity",
    "pool_metrics",
    "run_backtest",
]
