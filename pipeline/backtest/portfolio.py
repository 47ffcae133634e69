"""Replay of a portfolio's target weights over several markets sharing one equity.

The portfolio layer (`pipeline.portfolio`) decides, at each candle t's close, `targets[t, m]`
(a weight: fraction of the portfolio's equity held in market m, + long, − short; the gross may
exceed 1, since perpetual futures trade on margin) and `orders[t, m]` (rebalance m to that
weight at the next open). The rules:

- Accounting: linear perpetual futures. One equity for all markets, starting at 1.0 (cash
  1.0, no positions); cash + Σ qty × price = equity. Buying qty at fill price p takes qty × p
  from cash (cash may go negative: that is margin), selling adds it; the fee takes
  fee × |Δqty| × p. No financing is charged besides funding.
- Fills: an order decided at close k − 1 fills at open k, never at the close that decided it.
  The portfolio's value is computed once at open k, before any order (cash + Σ qty × open_k,
  as vectorbt's `update_value=False`), and every ordered market's new quantity is
  targets[k − 1, m] × value / open[k, m]: each market's order is the same whatever the order
  of execution. The fill price is open × (1 + slippage) buying and × (1 − slippage) selling
  (always adverse). An order that changes no quantity is no fill. The decisions of the last
  candle have no next open and are ignored.
- Funding: a position held through candle k (after its open's fills) pays, at every
  settlement s with open_k < s ≤ open_{k+1} (the single-market rule entry < settlement ≤
  exit), qty × rate_s × price_s: longs pay a positive rate, shorts receive it. The rate is
  the recorded one within a minute of s, else `PortfolioCosts.funding_rate` (counted). The
  price is the next open where s is one (always at 1h, 2h, 4h, 8h); elsewhere (inside a 6h,
  12h or 1d candle, or at the panel's last close) the open of the 1h candle at s when
  `hourly` candles are given and have it, else the candle's close (counted as
  `funding_priced_at_close` inside a candle; at the panel's end the close is that instant's
  price). See `pipeline.backtest.panel_funding`.
- Marking: equity[k] = cash + Σ qty × close[k, m] at every close.
- Liquidation: the account is liquidated in candle k if its equity can have reached 0 there,
  judged conservatively with every long at the candle's low and every short at its high at
  once (cash + Σ_{qty>0} qty × low + Σ_{qty<0} qty × high ≤ 0, after the open's fills and the
  candle's funding), or if the value at open k is ≤ 0 before any order (an open gapped
  through). Equity is 0 from candle k on, nothing trades any more, positions are 0; the
  result says so (`liquidated_at`) and keeps the value the liquidation wiped out
  (`liquidation_residual`, negative where the loss exceeded the equity). No liquidation fill
  is recorded: the exchange, not the strategy, closes the positions.
- Prices: every market has a candle at every instant of the panel (`pipeline.backtest.panel`);
  a NaN price is refused before the replay, never filled.

Metrics (`PortfolioResult.metrics`), with `pipeline.backtest.metrics.equity_metrics`'s
definitions annualised by the timeframe's candles per year (span = candles × step):
total_return, annualised_return, sharpe, sortino, max_drawdown (a curve that reached 0 has
sharpe and sortino NaN: no ratio is computed through a ruin; total_return is −1);
turnover_per_year: Σ over opens of traded notional (at fill prices) ÷ the value at that open,
per year; avg_gross_exposure and avg_net_exposure: means over the closes before any
liquidation of Σ |qty × close| ÷ equity and Σ qty × close ÷ equity; trades: fills;
fees_paid and funding_paid: sums in quote, i.e. fractions of the starting equity 1.0
(funding_paid < 0: received); liquidated, liquidated_at (the open time of the candle, ISO, or
None); funding_settlements, funding_filled_by_constant, funding_priced_at_close: totals over
markets (per market in `PortfolioResult.by_market`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.config import TAKER_FEE, YEAR_MS
from pipeline.backtest.funding import DEFAULT_RATE
from pipeline.backtest.metrics import equity_metrics
from pipeline.backtest.panel import Panel
from pipeline.backtest.panel_funding import FundingHistory, PanelFunding, panel_funding
from pipeline.backtest.rows import (
    FILL_CANDLE,
    FILL_FEE,
    FILL_HELD,
    FILL_MARKET,
    FILL_PRICE,
    FILL_QUANTITY,
    PNL_FEES,
    PNL_FUNDING,
    PNL_PRICE,
    PNL_SLIPPAGE,
)
from pipeline.data.timeframes import ms_to_iso


@dataclass(frozen=True)
class PortfolioCosts:
    """What every fill and settlement costs: Binance USDⓈ-M taker fee a side, adverse
    slippage per fill, and the usual funding rate per 8h settlement where no history covers
    it (stated, and counted in the metrics)."""

    fee: float = TAKER_FEE
    slippage_bps: float = 0.0
    funding_rate: float = DEFAULT_RATE

    def __post_init__(self) -> None:
        if not 0 <= self.fee < 1:
            raise ValueError(f"fee is a fraction of notional in [0, 1), got {self.fee}")
        if not 0 <= self.slippage_bps < 10_000:
            raise ValueError(f"slippage_bps must be in [0, 10000), got {self.slippage_bps}")
        if not math.isfinite(self.funding_rate):
            raise ValueError(f"funding_rate must be finite, got {self.funding_rate}")

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000.0


def _utc(ms: np.ndarray) -> pd.DatetimeIndex:
    """Epoch ms as UTC datetimes (a view cast, as engine.py does)."""
    return pd.DatetimeIndex((ms * 1_000_000).view("datetime64[ns]"), tz="UTC")


@dataclass
class PortfolioResult:
    """The replay's figures per candle and per market, and its fills.

    Tables are built when first read, from the fills where they can be (positions, traded
    notional and fees per candle): a sweep over many target sets needs only the metrics, and
    every [T, M] array the replay would fill costs its pages at each call.
    """

    panel: Panel
    costs: PortfolioCosts
    equity_values: np.ndarray  # [T] at each close
    gross: np.ndarray  # [T] Σ |qty × close| / equity at each close
    net: np.ndarray  # [T] Σ qty × close / equity
    funding: np.ndarray  # [T] paid (negative: received)
    fill_rows: np.ndarray  # [n, 6] (`pipeline.backtest.rows` FILL_* columns)
    attribution: np.ndarray  # [M, 4] (PNL_* columns)
    turnover: float  # Σ over opens of traded notional ÷ the value at that open
    liquidated_at: int | None  # candle index
    liquidation_residual: float  # the value a liquidation set to 0 (0.0 without one)
    funding_counts: PanelFunding
    metrics: dict[str, Any]

    @cached_property
    def index(self) -> pd.DatetimeIndex:
        return _utc(self.panel.timestamps).rename("timestamp")

    @cached_property
    def equity(self) -> pd.Series:
        return pd.Series(self.equity_values, index=self.index, name="equity")

    @cached_property
    def quantities(self) -> np.ndarray:
        """[T, M] quantity held at each close: each fill's quantity carried forward to the next
        fill of its market; 0 before the first and from a liquidation on."""
        n, m = self.panel.shape
        rows = self.fill_rows
        k = rows[:, FILL_CANDLE].astype(np.int64)
        j = rows[:, FILL_MARKET].astype(np.int64)
        held = np.zeros((n + 1, m))  # row 0: before the first candle
        at = np.zeros((n + 1, m), dtype=np.int64)
        held[k + 1, j] = rows[:, FILL_HELD]
        at[k + 1, j] = k + 1
        np.maximum.accumulate(at, axis=0, out=at)
        out = held[at, np.arange(m)][1:]
        if self.liquidated_at is not None:
            out[self.liquidated_at :] = 0.0
        return out

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Quantity held in each market at each close."""
        return pd.DataFrame(self.quantities, index=self.index, columns=list(self.panel.markets))

    @cached_property
    def weights(self) -> pd.DataFrame:
        """Each market's qty × close ÷ equity at each close (0 once liquidated)."""
        eq = self.equity_values[:, None]
        value = self.quantities * self.panel.close
        w = np.divide(value, eq, out=np.zeros_like(value), where=eq > 0)
        return pd.DataFrame(w, index=self.index, columns=list(self.panel.markets))

    def _per_candle(self, values: np.ndarray) -> np.ndarray:
        k = self.fill_rows[:, FILL_CANDLE].astype(np.int64)
        return np.bincount(k, values, minlength=len(self.panel.timestamps))

    @cached_property
    def exposure(self) -> pd.DataFrame:
        """Per candle: gross and net exposure at the close, traded notional (fill prices),
        fees, funding."""
        rows = self.fill_rows
        return pd.DataFrame(
            {
                "gross": self.gross,
                "net": self.net,
                "traded": self._per_candle(np.abs(rows[:, FILL_QUANTITY]) * rows[:, FILL_PRICE]),
                "fees": self._per_candle(rows[:, FILL_FEE]),
                "funding": self.funding,
            },
            index=self.index,
        )

    @cached_property
    def fills(self) -> pd.DataFrame:
        """One row per fill: time (the open it filled at), market, quantity (Δqty, + bought),
        price (the fill price, slippage included), notional, fee, held (the quantity after)."""
        rows = self.fill_rows
        k = rows[:, FILL_CANDLE].astype(np.int64)
        qty, price = rows[:, FILL_QUANTITY], rows[:, FILL_PRICE]
        return pd.DataFrame(
            {
                "time": _utc(self.panel.timestamps[k]),
                "market": pd.Categorical.from_codes(
                    rows[:, FILL_MARKET].astype(np.int64), list(self.panel.markets)
                ),
                "quantity": qty,
                "price": price,
                "notional": np.abs(qty) * price,
                "fee": rows[:, FILL_FEE],
                "held": rows[:, FILL_HELD],
            }
        )

    @cached_property
    def by_market(self) -> pd.DataFrame:
        """Per market, in quote (fractions of the starting equity): price P&L at quoted prices,
        slippage, fees, funding paid, their net, fills, and the funding settlement counts.
        Without a liquidation, 1 + Σ net_pnl is the final equity."""
        a = self.attribution
        fills = np.bincount(
            self.fill_rows[:, FILL_MARKET].astype(np.int64), minlength=len(self.panel.markets)
        )
        counts = self.funding_counts
        return pd.DataFrame(
            {
                "price_pnl": a[:, PNL_PRICE],
                "slippage": a[:, PNL_SLIPPAGE],
                "fees": a[:, PNL_FEES],
                "funding": a[:, PNL_FUNDING],
                "net_pnl": a[:, PNL_PRICE]
                - a[:, PNL_SLIPPAGE]
                - a[:, PNL_FEES]
                - a[:, PNL_FUNDING],
                "fills": fills,
                "funding_settlements": counts.settlements,
                "funding_filled_by_constant": counts.filled_by_constant,
                "funding_priced_at_close": counts.priced_at_close,
            },
            index=pd.Index(list(self.panel.markets), name="market"),
        )


def _panel_array(name: str, values: Any, p: Panel, dtype: type) -> np.ndarray:
    """`values` as a [T, M] array; a DataFrame's columns must be the panel's markets, in order."""
    if isinstance(values, pd.DataFrame) and list(values.columns) != list(p.markets):
        raise ValueError(
            f"{name} columns {list(values.columns)} are not the panel's markets {list(p.markets)}"
        )
    array = np.asarray(values)
    if array.shape != p.shape:
        raise ValueError(
            f"{name} must be one row per candle and one column per market {p.shape}, "
            f"got {array.shape}"
        )
    if dtype is bool and array.dtype != np.bool_:
        raise ValueError(f"{name} must be boolean (rebalance or not), got {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def _check_targets(targets: np.ndarray, orders: np.ndarray, p: Panel) -> None:
    # The last candle's decisions are ignored: any value may stand there.
    if np.isfinite(targets[:-1][orders[:-1]]).all():
        return
    bad = orders[:-1] & ~np.isfinite(targets[:-1])
    k, j = (int(x) for x in np.argwhere(bad)[0])
    raise ValueError(
        f"{p.markets[j]}: order at {ms_to_iso(int(p.timestamps[k]))} has target "
        f"{float(targets[k, j])!r}: an order needs a finite weight"
    )


def _metrics(r: PortfolioResult) -> dict[str, Any]:
    p = r.panel
    n = len(p.timestamps)
    span = n * p.step_ms
    years = span / YEAR_MS
    out: dict[str, Any] = equity_metrics(r.equity_values, span, YEAR_MS / p.step_ms)
    live = n if r.liquidated_at is None else r.liquidated_at
    if r.liquidated_at is not None or r.equity_values.min() <= 0:
        out["sharpe"] = math.nan
        out["sortino"] = math.nan
    out["turnover_per_year"] = r.turnover / years
    out["avg_gross_exposure"] = float(np.mean(r.gross[:live])) if live else math.nan
    out["avg_net_exposure"] = float(np.mean(r.net[:live])) if live else math.nan
    out["trades"] = len(r.fill_rows)
    out["fees_paid"] = float(r.attribution[:, PNL_FEES].sum())
    out["funding_paid"] = float(r.funding.sum())
    out["liquidated"] = r.liquidated_at is not None
    out["liquidated_at"] = (
        None if r.liquidated_at is None else ms_to_iso(int(p.timestamps[r.liquidated_at]))
    )
    counts = r.funding_counts
    out["funding_settlements"] = int(counts.settlements.sum())
    out["funding_filled_by_constant"] = int(counts.filled_by_constant.sum())
    out["funding_priced_at_close"] = int(counts.priced_at_close.sum())
    return out


def run_portfolio_backtest(
    p: Panel,
    targets: np.ndarray | pd.DataFrame,
    orders: np.ndarray | pd.DataFrame,
    costs: PortfolioCosts | None = None,
    funding: Mapping[str, FundingHistory] | None = None,
    hourly: Mapping[str, pd.DataFrame] | None = None,
) -> PortfolioResult:
    """Replay `orders` toward `targets` over panel `p` under the rules in this module's
    docstring.

    `targets` (float) and `orders` (bool) are [T, M], one row per candle of the panel (the
    decision at its close), one column per market in the panel's order; a target may be NaN
    where no order is placed. `funding`: each market's recorded history, (settlement ms, rate)
    ascending; a market without one is charged `costs.funding_rate` at every settlement.
    `hourly`: each market's 1h candles, to price settlements inside 6h, 12h and 1d candles
    exactly (without them: the candle's close, counted).
    """
    from pipeline.backtest.portfolio_kernel import simulate  # numba: loaded when a replay runs

    costs = costs or PortfolioCosts()
    t = _panel_array("targets", targets, p, np.float64)
    o = _panel_array("orders", orders, p, bool)
    _check_targets(t, o, p)
    paid = panel_funding(p, funding, costs.funding_rate, hourly)
    equity, gross, net, funding_paid, fills, attribution, turnover, liquidated_at, residual = (
        simulate(
            p.open,
            p.high,
            p.low,
            p.close,
            t,
            o,
            paid.candles,
            paid.unit,
            costs.fee,
            costs.slippage,
        )
    )
    result = PortfolioResult(
        panel=p,
        costs=costs,
        equity_values=equity,
        gross=gross,
        net=net,
        funding=funding_paid,
        fill_rows=fills,
        attribution=attribution,
        turnover=float(turnover),
        liquidated_at=None if liquidated_at < 0 else int(liquidated_at),
        liquidation_residual=float(residual),
        funding_counts=paid,
        metrics={},
    )
    result.metrics = _metrics(result)
    return result
