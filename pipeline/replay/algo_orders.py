"""Resting stop and take-profit orders of the replay account: Binance's Algo Order API.

Binance USDⓈ-M takes conditional orders (STOP_MARKET, TAKE_PROFIT_MARKET) through its algo
service (`POST /fapi/v1/algoOrder`, `algoType=CONDITIONAL`), and ccxt sends them there. An
algo order rests with status NEW until its trigger price is reached; then a reduce-only market
order (its `actualOrderId`) fills and the algo order is FINISHED, or, with no position left to
reduce, EXPIRED.

The replay checks each resting order on every 1h candle that closed since it was placed, by
the backtest's rule (`pipeline.backtest.triggers`): a stop fills at its trigger price or at an
open that gapped through it, a take-profit at its trigger price, and when one candle touches
both, the stop first. Its fill is stamped inside the trigger candle (its last millisecond), as
the exchange would have made it, even when no request came for hours. The candle the order was
placed in counts from its open (the replay's price inside a candle is its open).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from pipeline.backtest.triggers import STOP, TAKE_PROFIT, Candle, fill_price, in_fill_order
from pipeline.replay.errors import BinanceError, missing

HOUR_MS = 3_600_000
KINDS = {"STOP_MARKET": STOP, "TAKE_PROFIT_MARKET": TAKE_PROFIT}
_FIRST_ALGO_ID = 1_000_000_001


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str  # BUY or SELL
    order_type: str  # STOP_MARKET or TAKE_PROFIT_MARKET
    quantity: Decimal  # 0 with closePosition: the whole position when triggered
    trigger_price: Decimal
    reduce_only: bool
    close_position: bool
    create_ms: int
    watched_from_ms: int  # the open of the next 1h candle it has not been checked on
    status: str = "NEW"  # NEW, FINISHED, CANCELED, EXPIRED
    update_ms: int = 0
    trigger_ms: int = 0
    actual_order_id: int | None = None
    actual_price: float = 0.0

    @property
    def kind(self) -> str:
        return KINDS[self.order_type]


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "false").lower() == "true"


def _decimal(params: dict[str, str], name: str) -> Decimal:
    try:
        value = Decimal(params.get(name) or "")
    except InvalidOperation:
        raise missing(name) from None
    if not value.is_finite() or value <= 0:
        raise BinanceError(-1102, f"Parameter '{name}' must be positive.")
    return value


class ReplayAlgoOrders:
    """The algo orders of one `ReplayAccount` (its lock, positions and fills)."""

    def __init__(self, account, candles: Callable[[str], np.ndarray]):
        """`candles(market)`: the market's complete 1h candles, [open_ms, o, h, l, c, v] rows."""
        self.account = account
        self._candles = candles
        self.reset()

    def reset(self) -> None:
        with self.account._lock:
            self.orders: dict[int, AlgoOrder] = {}
            self.by_client_id: dict[str, int] = {}
            self._next_id = _FIRST_ALGO_ID

    # -- endpoints -----------------------------------------------------------------------
    def new_order(self, params: dict[str, str]) -> dict:
        """POST /fapi/v1/algoOrder (algoType CONDITIONAL): validate, then rest."""
        acc = self.account
        with acc._lock:
            self.watch()
            if params.get("algoType") != "CONDITIONAL":
                raise BinanceError(-1116, "Invalid algoType.")
            market = acc._market(params)
            rules = acc.rules[market]
            side = params.get("side", "")
            if side not in ("BUY", "SELL"):
                raise BinanceError(-1117, "Invalid side.")
            order_type = params.get("type", "")
            if order_type not in KINDS:
                raise BinanceError(-1116, "Invalid orderType.")
            client_id = params.get("clientAlgoId") or f"replay-algo-{self._next_id}"
            if client_id in self.by_client_id:
                raise BinanceError(-4116, "ClientOrderId is duplicated.")
            trigger = _decimal(params, "triggerPrice")
            if trigger % rules.tick != 0:
                raise BinanceError(-4014, "Price not increased by tick size.")
            close_position = _flag(params, "closePosition")
            reduce_only = _flag(params, "reduceOnly")
            if close_position and (reduce_only or params.get("quantity")):
                raise BinanceError(
                    -1106, "Parameter 'quantity' or 'reduceOnly' sent when not required."
                )
            quantity = Decimal(0) if close_position else acc._quantity(params, rules)
            price = acc._price(market)
            if price is None:
                raise BinanceError(-1121, "Invalid symbol.")
            kind = KINDS[order_type]
            now = acc._now()
            if fill_price(kind, side.lower(), float(trigger), Candle(now, price, price, price)):
                raise BinanceError(-2021, "Order would immediately trigger.")
            order = AlgoOrder(
                algo_id=self._next_id,
                client_algo_id=client_id,
                symbol=market,
                side=side,
                order_type=order_type,
                quantity=quantity,
                trigger_price=trigger,
                reduce_only=reduce_only or close_position,
                close_position=close_position,
                create_ms=now,
                watched_from_ms=now // HOUR_MS * HOUR_MS,
                update_ms=now,
            )
            self._next_id += 1
            self.orders[order.algo_id] = order
            self.by_client_id[client_id] = order.algo_id
            return self._json(order)

    def _find(self, params: dict[str, str]) -> AlgoOrder:
        algo_id, client_id = params.get("algoId"), params.get("clientAlgoId")
        if algo_id is None and client_id is None:
            raise BinanceError(-1102, "Either algoId or clientAlgoId must be sent.")
        try:
            key = int(algo_id) if algo_id is not None else self.by_client_id.get(client_id or "")
        except ValueError:
            raise missing("algoId") from None
        order = self.orders.get(key) if key is not None else None
        market = params.get("symbol")
        if order is None or (market and order.symbol != market):
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def query(self, params: dict[str, str]) -> dict:
        """GET /fapi/v1/algoOrder by algoId or clientAlgoId."""
        with self.account._lock:
            self.watch()
            return self._json(self._find(params))

    def cancel(self, params: dict[str, str]) -> dict:
        """DELETE /fapi/v1/algoOrder: only a resting (NEW) order can be cancelled."""
        with self.account._lock:
            self.watch()
            order = self._find(params)
            if order.status != "NEW":
                raise BinanceError(-2011, "Unknown order sent.")
            order.status, order.update_ms = "CANCELED", self.account._now()
            return {
                "algoId": order.algo_id,
                "clientAlgoId": order.client_algo_id,
                "code": "200",
                "msg": "success",
            }

    def open_orders(self, params: dict[str, str]) -> list[dict]:
        """GET /fapi/v1/openAlgoOrders (of one market, or all)."""
        with self.account._lock:
            self.watch()
            market = self.account._market(params, required=False)
            return [
                self._json(o)
                for o in self.orders.values()
                if o.status == "NEW" and market in (None, o.symbol)
            ]

    # -- triggering ----------------------------------------------------------------------
    def watch(self) -> int:
        """Check every resting order on the 1h candles closed since its last check; fill or
        expire those touched, candle by candle and stops first. Returns the fills made."""
        acc = self.account
        with acc._lock:
            resting = [o for o in self.orders.values() if o.status == "NEW"]
            if not resting:
                return 0
            now = acc._now()
            fills = 0
            for market in dict.fromkeys(o.symbol for o in resting):
                fills += self._watch_market(market, now)
            return fills

    def _watch_market(self, market: str, now: int) -> int:
        rows = self._candles(market)
        waiting = [o for o in self.orders.values() if o.status == "NEW" and o.symbol == market]
        since = min(o.watched_from_ms for o in waiting)
        opens = rows[:, 0]
        first = int(np.searchsorted(opens, since, side="left"))
        last = int(np.searchsorted(opens, now - HOUR_MS, side="right"))  # closed by now
        fills = 0
        for row in rows[first:last]:
            candle = Candle(int(row[0]), float(row[1]), float(row[2]), float(row[3]))
            touched = [
                o
                for o in in_fill_order(waiting, lambda o: o.kind)
                if o.status == "NEW" and o.watched_from_ms <= candle.open_ms
            ]
            for order in touched:
                level = fill_price(
                    order.kind, order.side.lower(), float(order.trigger_price), candle
                )
                if level is not None:
                    fills += self._trigger(order, level, candle.open_ms + HOUR_MS - 1)
        if last > first:
            next_ms = int(rows[last - 1][0]) + HOUR_MS
            for order in waiting:
                order.watched_from_ms = max(order.watched_from_ms, next_ms)
        return fills

    def _trigger(self, order: AlgoOrder, price: float, at_ms: int) -> int:
        """The triggered market order, reduce-only; EXPIRED when nothing is left to reduce."""
        placed = self.account.fill_reducing(
            order.symbol,
            order.side,
            None if order.close_position else order.quantity,
            price,
            at_ms,
            f"algo-{order.algo_id}",
        )
        order.trigger_ms = order.update_ms = at_ms
        if placed is None:
            order.status = "EXPIRED"
            return 0
        order.status = "FINISHED"
        order.actual_order_id, order.actual_price = placed.order_id, placed.avg_price
        return 1

    # -- JSON ----------------------------------------------------------------------------
    def _json(self, order: AlgoOrder) -> dict:
        step = self.account.rules[order.symbol].step
        tick = self.account.rules[order.symbol].tick
        return {
            "algoId": order.algo_id,
            "clientAlgoId": order.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": order.order_type,
            "symbol": order.symbol,
            "side": order.side,
            "positionSide": "BOTH",
            "timeInForce": "GTC",
            "quantity": str(order.quantity.quantize(step)),
            "algoStatus": order.status,
            "triggerPrice": str(order.trigger_price.quantize(tick)),
            "price": "0",
            "icebergQuantity": None,
            "selfTradePreventionMode": "NONE",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": order.close_position,
            "priceProtect": False,
            "reduceOnly": order.reduce_only,
            "createTime": order.create_ms,
            "updateTime": order.update_ms,
            "triggerTime": order.trigger_ms,
            "goodTillDate": 0,
            "actualOrderId": str(order.actual_order_id or ""),
            "actualPrice": repr(order.actual_price),
        }
