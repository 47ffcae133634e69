"""The shared-equity portfolio loop, candle by candle, compiled with numba: one pass, all markets.

Every market's order is sized from one equity, and a liquidation ends them all, so the markets
cannot be replayed apart; numba keeps the loop at a few ms for ten markets of hourly candles.
The rules are in `pipeline.backtest.portfolio`'s docstring; this module only executes them on
arrays the Python API has already checked (aligned [T, M] prices without NaN, finite targets
where an order is placed).
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


@njit(cache=True)
def simulate(open_, high, low, close, targets, orders, funded, funding_unit, fee, slip):
    """Replay `orders` (bool [T, M], decided at each close) toward `targets` (weights [T, M]).

    Funding comes as rows, one per candle that holds a settlement (1/8 of hourly candles):
    `funded` [S] the candle indexes, ascending, and `funding_unit` [S, M] the quote paid per
    unit of quantity held through that candle (Σ rate × price over its settlements). Start:
    cash 1.0, no positions.

    Only what cannot be rebuilt from the fills is returned per candle (the outputs' memory,
    freshly paged in at every call, costs more than the loop itself):
    (equity, gross, net, funding, fills, attribution, turnover, liquidated_at, residual)
    - equity [T]: marked at each close (0 from a liquidation on);
    - gross, net [T]: Σ |qty × close| / equity and Σ qty × close / equity (0 once liquidated);
    - funding [T]: paid per candle (negative: received);
    - fills [n, 6]: candle, market, Δqty, fill price, fee, quantity held after the fill (only
      orders that change a quantity);
    - attribution [M, 4]: price P&L at quoted prices (positions valued at the last close, or at
      the liquidation's price), slippage, fees, funding: 1 + Σ (price − the three costs) is
      the final equity, or `residual` when liquidated;
    - turnover: Σ over opens of the notional traded (fill prices) ÷ the value at that open;
    - liquidated_at: the candle index of a liquidation, −1 if none; residual: the account's
      value at that instant (cash + Σ qty × the open or close it was judged at), which the
      liquidation sets to 0.
    """
    n_candles, n_markets = open_.shape
    n_orders = 0
    for k in range(n_candles - 1):  # the last candle's decisions have no next open
        for m in range(n_markets):
            if orders[k, m]:
                n_orders += 1
    fills = np.empty((n_orders, 6))
    equity = np.zeros(n_candles)
    gross = np.zeros(n_candles)
    net = np.zeros(n_candles)
    funding = np.zeros(n_candles)
    attribution = np.zeros((n_markets, 4))
    qty = np.zeros(n_markets)
    cash = 1.0
    count = 0
    row = 0  # the next funding row
    turnover = 0.0
    liquidated_at = -1
    residual = 0.0
    marks = close[n_candles - 1]  # prices the open positions are valued at in the attribution
    for k in range(n_candles):
        value = cash
        for m in range(n_markets):
            value += qty[m] * open_[k, m]
        if value <= 0.0:  # the open gapped through zero: nothing can be sized from it
            liquidated_at, residual, marks = k, value, open_[k]
            break
        settles = row < len(funded) and funded[row] == k
        traded = 0.0
        # One pass per market: its fill at this open, its funding, its worst and close values.
        worst = 0.0  # every long at the candle's low and every short at its high at once
        mark = 0.0
        exposed = 0.0
        for m in range(n_markets):
            if k > 0 and orders[k - 1, m]:
                price = open_[k, m]
                new = targets[k - 1, m] * value / price
                delta = new - qty[m]
                if delta != 0.0:
                    fill = price * (1.0 + slip) if delta > 0 else price * (1.0 - slip)
                    notional = abs(delta) * fill
                    cost = fee * notional
                    cash -= delta * fill + cost
                    qty[m] = new
                    fills[count, FILL_CANDLE] = k
                    fills[count, FILL_MARKET] = m
                    fills[count, FILL_QUANTITY] = delta
                    fills[count, FILL_PRICE] = fill
                    fills[count, FILL_FEE] = cost
                    fills[count, FILL_HELD] = new
                    count += 1
                    attribution[m, PNL_PRICE] -= delta * price
                    attribution[m, PNL_SLIPPAGE] += abs(delta) * price * slip
                    attribution[m, PNL_FEES] += cost
                    traded += notional
            q = qty[m]
            if q == 0.0:
                continue
            if settles:
                paid = q * funding_unit[row, m]
                cash -= paid
                attribution[m, PNL_FUNDING] += paid
                funding[k] += paid
            worst += q * (low[k, m] if q > 0.0 else high[k, m])
            position_value = q * close[k, m]
            mark += position_value
            exposed += abs(position_value)
        if settles:
            row += 1
        turnover += traded / value
        worst += cash
        held = mark
        mark += cash
        if worst <= 0.0 or mark <= 0.0:
            liquidated_at, residual, marks = k, mark, close[k]
            break
        equity[k] = mark
        gross[k] = exposed / mark
        net[k] = held / mark
    for m in range(n_markets):
        attribution[m, PNL_PRICE] += qty[m] * marks[m]
    return (
        equity,
        gross,
        net,
        funding,
        fills[:count],
        attribution,
        turnover,
        liquidated_at,
        residual,
    )
