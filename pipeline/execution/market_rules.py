"""An exchange's order filters as `MarketRules`, read off ccxt's loaded markets, and quantities
rounded down to a market's amount step.

ccxt describes a market's amount precision in one of two ways, by `exchange.precisionMode`:
TICK_SIZE (Binance, Bybit in ccxt 4: `precision.amount` IS the step, e.g. 0.001) or
DECIMAL_PLACES (`precision.amount` is a count of decimals, 3 → a step of 0.001). A market
described by significant digits has no fixed step: the step is then 0 and the broker's own
`amount_to_precision` does the rounding.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pipeline.execution.broker import MarketRules

if TYPE_CHECKING:
    import ccxt


def amount_step(exchange: ccxt.Exchange, market: dict) -> float:
    """The market's amount step under the exchange's precision mode (0: no fixed step)."""
    import ccxt

    precision = (market.get("precision") or {}).get("amount")
    if precision is None:
        return 0.0
    if exchange.precisionMode == ccxt.TICK_SIZE:
        return float(precision)
    if exchange.precisionMode == ccxt.DECIMAL_PLACES:
        return float(Decimal(1).scaleb(-int(precision)))
    return 0.0  # SIGNIFICANT_DIGITS: a relative precision, not a step


def ccxt_market_rules(exchange: ccxt.Exchange, symbol: str) -> MarketRules:
    """`symbol`'s amount step and minimum notional (`limits.cost.min`) from the exchange's
    loaded markets (the caller loads them)."""
    market = exchange.market(symbol)
    cost = ((market.get("limits") or {}).get("cost") or {}).get("min")
    return MarketRules(amount_step=amount_step(exchange, market), min_notional=float(cost or 0.0))


def round_down(quantity: float, step: float) -> float:
    """`quantity` ≥ 0 rounded down to a multiple of `step` (0: unchanged), in decimal so that
    0.3 stays 0.3 (float division would make it 0.299… and lose a step), as ccxt's
    `amount_to_precision` truncates: the quantity sent is the quantity filled."""
    if quantity < 0:
        raise ValueError(f"round_down takes a size (≥ 0), got {quantity}")
    if step <= 0:
        return quantity
    q, s = Decimal(repr(quantity)), Decimal(repr(step))
    return float((q // s) * s)
