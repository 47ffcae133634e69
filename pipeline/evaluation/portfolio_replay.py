"""Replays of score panels over any span of one market panel: the backtests every portfolio
figure comes from (walk-forward folds, the operating-point choice, the Dagster candidate and
its gate), with the same costs, funding and sizing volatility.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.panel import Panel, panel
from pipeline.backtest.portfolio import PortfolioCosts, PortfolioResult, run_portfolio_backtest
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.layer import PortfolioDecisions, decide
from pipeline.portfolio.volatility import annual_volatility

FundingHistories = dict[str, list[tuple[int, float]]]
VOL_DAYS = 30  # the volatility every position is sized by: the last 30 days, annualised


class Replayer:
    """The whole history's panel and what a backtest of any span of it needs."""

    def __init__(
        self,
        candles: dict[str, pd.DataFrame],
        hourly: dict[str, pd.DataFrame],
        funding: FundingHistories,
        timeframe: str,
        markets: list[str],
        costs: PortfolioCosts,
    ):
        self.panel = panel({m: candles[m] for m in markets}, timeframe)
        self.markets = markets
        self.hourly = {m: hourly[m] for m in markets if m in hourly}
        self.funding = {m: funding[m] for m in markets if m in funding}
        self.costs = costs
        self.timeframe = timeframe
        self.vol = annual_volatility(
            self.panel.close, self.panel.timestamps, timeframe, days=VOL_DAYS
        )

    @property
    def ms(self) -> np.ndarray:
        return self.panel.timestamps

    def rows(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Panel rows whose candle opens in [start, end]."""
        lo = np.searchsorted(self.ms, start.value // 1_000_000, side="left")
        hi = np.searchsorted(self.ms, end.value // 1_000_000, side="right")
        return np.arange(lo, hi)

    def run(
        self,
        rows: np.ndarray,
        decisions: PortfolioDecisions,
        costs: PortfolioCosts | None = None,
    ) -> PortfolioResult:
        return run_portfolio_backtest(
            sub_panel(self.panel, int(rows[0]), int(rows[-1]) + 1),
            decisions.targets,
            decisions.orders,
            costs or self.costs,
            funding=self.funding,
            hourly=self.hourly,
        )

    def replay(self, rows: np.ndarray) -> Callable[[np.ndarray, PortfolioConfig], dict]:
        """A `portfolio_choice.Replay` over `rows`: scores there → the backtest's figures."""

        def figures(scores: np.ndarray, cfg: PortfolioConfig) -> dict[str, Any]:
            return headline(self.run(rows, decide(scores, self.vol[rows], cfg)).metrics)

        return figures


def sub_panel(p: Panel, start: int, stop: int) -> Panel:
    """Rows [start, stop) of a panel (checked again: a cheap copy of a few thousand rows)."""
    return Panel(
        timestamps=p.timestamps[start:stop],
        markets=p.markets,
        open=p.open[start:stop],
        high=p.high[start:stop],
        low=p.low[start:stop],
        close=p.close[start:stop],
        timeframe=p.timeframe,
    )


def market_figures(result: PortfolioResult) -> dict[str, dict[str, Any]]:
    """Per market: its share of the portfolio's P&L (fractions of the starting equity)."""
    table = result.by_market
    return {
        market: {k: _plain(v) for k, v in row.items()}
        for market, row in table.to_dict("index").items()
    }


HEADLINE = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover_per_year",
    "avg_gross_exposure",
    "trades",
)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures every verdict table shows, plain floats (NaN where undefined)."""
    out = {k: _plain(metrics.get(k)) for k in HEADLINE}
    out["liquidated"] = bool(metrics.get("liquidated", False))
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value
