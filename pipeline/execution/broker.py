"""The broker interface the position manager trades through, and its plain data types.

Two brokers implement it: `PaperBroker` (fills at the next price with fees and slippage, its
state in PostgreSQL) and `CcxtBroker` (an exchange account through ccxt; the replay exchange
offline). Quantities are in base units and signed where they describe a position (+ long,
− short); orders carry an unsigned quantity and a side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

BUY, SELL = "buy", "sell"
FILLED, REJECTED, OPEN, CANCELLED = "filled", "rejected", "open", "cancelled"
# Where an exchange broker reads its credentials (named here, cheap to import: the Dagster
# resource refers to them at definition time, `CcxtBroker` when it is built).
ENV_API_KEY, ENV_API_SECRET = "SIGNALS_API_KEY", "SIGNALS_API_SECRET"


class BrokerError(RuntimeError):
    """The broker could not tell what happened (network down past the retry bound, an
    unexpected answer): the caller must reconcile before trading again."""


@dataclass(frozen=True)
class OrderRequest:
    """A market order. `client_order_id` is derived from the signal (see `orders.py`), so a
    retried request is the same order to the exchange and can never be placed twice."""

    client_order_id: str
    symbol: str  # ccxt unified symbol, e.g. BTC/USDT:USDT
    side: str  # BUY or SELL
    quantity: float  # base units, > 0
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.side not in (BUY, SELL):
            raise ValueError(f"order side must be {BUY!r} or {SELL!r}, got {self.side!r}")
        if not self.quantity > 0:
            raise ValueError(f"order quantity must be positive, got {self.quantity}")


@dataclass(frozen=True)
class ExitOrder:
    """A resting reduce-only exit: a stop or take-profit market order that the exchange
    triggers when the price reaches `trigger_price` (Binance STOP_MARKET / TAKE_PROFIT_MARKET,
    Bybit's conditional orders). Its client order id is derived from the signal that armed
    it, so a retried placement is the same order."""

    client_order_id: str
    symbol: str
    side: str  # SELL closes a long, BUY a short
    quantity: float  # base units, > 0: the position it protects
    kind: str  # "stop" or "take_profit" (`pipeline.backtest.triggers`)
    trigger_price: float

    def __post_init__(self) -> None:
        if self.side not in (BUY, SELL):
            raise ValueError(f"order side must be {BUY!r} or {SELL!r}, got {self.side!r}")
        if not self.quantity > 0:
            raise ValueError(f"order quantity must be positive, got {self.quantity}")
        if self.kind not in ("stop", "take_profit"):
            raise ValueError(f"a resting exit is a stop or a take_profit, got {self.kind!r}")
        if not 0 < self.trigger_price < float("inf"):
            raise ValueError(f"trigger price must be a positive number, got {self.trigger_price}")


@dataclass(frozen=True)
class OrderResult:
    """What the broker says became of an order. A rejection is a result, not an exception:
    the exchange answered, nothing changed, and `reason` says why in the exchange's words."""

    client_order_id: str
    exchange_order_id: str | None
    status: str  # FILLED, REJECTED, OPEN or CANCELLED
    filled: float  # base units filled
    average_price: float | None
    fee: float  # quote currency, ≥ 0
    timestamp_ms: int  # the broker's (exchange's) time of the answer
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer as the managers' execution reports give it."""
        return {
            "client_order_id": self.client_order_id,
            "status": self.status,
            "filled": self.filled,
            "price": self.average_price,
            "fee": self.fee,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    quantity: float  # signed: + long, − short
    entry_price: float


@dataclass(frozen=True)
class MarketRules:
    """The exchange's filters an order must pass in one market: quantities are multiples of
    `amount_step` (0: any quantity), and an order's notional (quantity × price) is at least
    `min_notional` (0: no minimum) unless it is reduce-only."""

    amount_step: float = 0.0
    min_notional: float = 0.0

    def __post_init__(self) -> None:
        for name in ("amount_step", "min_notional"):
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")


@dataclass(frozen=True)
class OpenOrder:
    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: str
    quantity: float
    conditional: bool = False  # a resting stop / take-profit (the exchange's trigger orders)


class Broker(Protocol):
    """What the position manager needs from an account."""

    name: str  # e.g. "paper" or "binanceusdm"

    def price(self, symbol: str) -> float:
        """The price a market order would fill at now, before slippage."""
        ...

    def equity(self) -> float:
        """Account equity in the quote currency: wallet balance plus unrealised P&L."""
        ...

    def positions(self) -> dict[str, BrokerPosition]:
        """Open positions by symbol (non-zero quantities only)."""
        ...

    def open_orders(self, symbol: str | None = None, conditional: bool = True) -> list[OpenOrder]:
        """Resting orders: of one market when `symbol` is given (cheap at the exchange: Binance
        weighs it 1, all markets 40), else of every market; with `conditional`, the resting
        stops and take-profits too (at Binance a second request, to its algo orders)."""
        ...

    def place(self, order: OrderRequest) -> OrderResult:
        """Place a market order, idempotently by `client_order_id`; raise `BrokerError` only
        when the outcome is unknown after the bounded retries."""
        ...

    def place_exit(self, order: ExitOrder) -> OrderResult:
        """Rest a reduce-only stop or take-profit, idempotently by `client_order_id`: OPEN
        once accepted (FILLED, CANCELLED when it already was); raise `BrokerError` only when
        the outcome is unknown after the bounded retries."""
        ...

    def cancel_exit(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel a resting exit. One that filled or went before it could be cancelled
        reports what became of it (FILLED, CANCELLED), so its fill is never lost."""
        ...

    def configure_market(self, symbol: str, leverage: int, margin_mode: str) -> None:
        """Set leverage and margin mode ("isolated" or "cross") for one market."""
        ...

    def market_rules(self, symbol: str) -> MarketRules:
        """The market's amount step and minimum notional, as the exchange publishes them."""
        ...

    def lookup(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """What became of the order with this client order id; None if the broker never
        received it. Raise `BrokerError` when the broker cannot be asked."""
        ...
