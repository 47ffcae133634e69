"""Bybit's conditional orders, served by the replay account's trigger orders (`algo_orders.py`).

A conditional order is `POST /v5/order/create` with a `triggerPrice` and a `triggerDirection`
(1: triggers when the price rises to it, 2: when it falls to it); ccxt sends one for its
unified `stopLossPrice` / `takeProfitPrice`, reduce-only. The replay's engine knows Binance's
STOP_MARKET and TAKE_PROFIT_MARKET: a sell triggered falling stops a long, a sell triggered
rising takes its profit, a buy the reverse. Once triggered, Bybit's conditional order fills
under its own id (Untriggered → Filled); cancelled or expired (nothing left to reduce) it is
Deactivated. It is listed with `orderFilter=StopOrder`, and the plain listings leave it out.

Only reduce-only conditional market orders are served (what resting exits are); TP/SL attached
to an entry order (`stopLoss`, `takeProfit`) and conditional entries are refused in words.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.replay.account import ReplayAccount
from pipeline.replay.algo_orders import AlgoOrder, ReplayAlgoOrders
from pipeline.replay.bybit_errors import BybitError, from_binance, params_error
from pipeline.replay.errors import BinanceError

RISING, FALLING = "1", "2"
STATUSES = {
    "NEW": "Untriggered",
    "FINISHED": "Filled",
    "CANCELED": "Deactivated",
    "EXPIRED": "Deactivated",
}
TRIGGERED_FILL_PREFIX = "algo-"  # the client id the engine gives a triggered order's fill


def _kind(side: str, direction: str) -> str:
    """STOP_MARKET when the trigger moves against the position the order closes."""
    return "STOP_MARKET" if (side == "SELL") == (direction == FALLING) else "TAKE_PROFIT_MARKET"


def _direction(order: AlgoOrder) -> int:
    stop = order.order_type == "STOP_MARKET"
    return int(FALLING if stop == (order.side == "SELL") else RISING)


class BybitConditional:
    """Conditional orders of the Bybit dialect over the account's trigger orders."""

    def __init__(
        self,
        account: ReplayAccount,
        algo: ReplayAlgoOrders,
        plain_json: Callable[[dict], dict],
    ):
        self.account, self.algo = account, algo
        self._plain_json = plain_json  # an engine order (Binance fields) in Bybit's words

    def create(self, symbol: str, side: str, kind: str, params: dict[str, str]) -> dict:
        if kind != "MARKET":
            raise params_error("the replay serves conditional market orders only")
        if (params.get("reduceOnly") or "").lower() != "true":
            raise params_error("the replay serves reduce-only conditional orders only")
        direction = params.get("triggerDirection", "")
        if direction not in (RISING, FALLING):
            raise params_error("triggerDirection must be 1 (rising) or 2 (falling)")
        link = params.get("orderLinkId") or ""
        if link and link in self.account.by_client_id:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        request = {
            "algoType": "CONDITIONAL",
            "symbol": symbol,
            "side": side,
            "type": _kind(side, direction),
            "quantity": params.get("qty", ""),
            "triggerPrice": params.get("triggerPrice", ""),
            "reduceOnly": "true",
        }
        if link:
            request["clientAlgoId"] = link
        try:
            answer = self.algo.new_order(request)
        except BinanceError as err:
            if err.code == -2021:  # it would trigger at once: Bybit names the direction
                expected, cmp = ("Rising", "<=") if direction == RISING else ("Falling", ">=")
                code = 110092 if direction == RISING else 110093
                raise BybitError(
                    code, f"expect {expected}, but trigger_price {cmp} current"
                ) from None
            raise from_binance(err) from None
        return {"orderId": str(answer["algoId"]), "orderLinkId": link}

    def _find(self, params: dict[str, str], symbols: list[str]) -> AlgoOrder | None:
        order_id, link = params.get("orderId"), params.get("orderLinkId")
        with self.account._lock:
            if order_id:
                found = self.algo.orders.get(int(order_id)) if order_id.isdigit() else None
            else:
                key = self.algo.by_client_id.get(link or "")
                found = self.algo.orders.get(key) if key is not None else None
        return found if found is not None and found.symbol in symbols else None

    def listing(self, params: dict[str, str], symbols: list[str], limit: int, open_: bool) -> list:
        """One order by orderId/orderLinkId whatever its state, else the resting ones (`open_`)
        or the finished ones, newest first."""
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._find(params, symbols)
            return [] if found is None else [self.json(found)]
        with self.account._lock:
            chosen = [
                o
                for o in self.algo.orders.values()
                if o.symbol in symbols and (o.status == "NEW") == open_
            ]
        chosen.sort(key=lambda o: o.create_ms, reverse=True)
        return [self.json(o) for o in chosen[:limit]]

    def cancel(self, params: dict[str, str], symbol: str) -> dict:
        """A resting conditional order cancelled; any other: "Order does not exist"."""
        found = self._find(params, [symbol])
        if found is None:
            raise BybitError(110001, "Order does not exist")
        try:
            self.algo.cancel({"symbol": symbol, "algoId": str(found.algo_id)})
        except BinanceError as err:
            raise from_binance(err) from None
        return {"orderId": str(found.algo_id), "orderLinkId": self._link_id(found)}

    def fills_of(self, algo_id: str) -> str | None:
        """The engine's order id of a triggered conditional order's fill (None: not filled)."""
        order = self.algo.orders.get(int(algo_id)) if algo_id.isdigit() else None
        if order is None or order.actual_order_id is None:
            return None
        return str(order.actual_order_id)

    def triggered_by(self, client_order_id: str) -> AlgoOrder | None:
        """The conditional order an engine fill (client id `algo-<id>`) was triggered from."""
        if not client_order_id.startswith(TRIGGERED_FILL_PREFIX):
            return None
        algo_id = client_order_id[len(TRIGGERED_FILL_PREFIX) :]
        return self.algo.orders.get(int(algo_id)) if algo_id.isdigit() else None

    @staticmethod
    def _link_id(order: AlgoOrder) -> str:
        generated = f"replay-algo-{order.algo_id}"
        return "" if order.client_algo_id == generated else order.client_algo_id

    def json(self, order: AlgoOrder) -> dict:
        """As Bybit lists a conditional order: once filled, with its fill's figures."""
        actual = None
        if order.actual_order_id is not None:
            actual = self.account._order_json(self.account.orders[order.actual_order_id])
        engine = actual or {
            "orderId": order.algo_id,
            "clientOrderId": order.client_algo_id,
            "symbol": order.symbol,
            "side": order.side,
            "type": "MARKET",
            "status": "NEW",
            "price": "0",
            "avgPrice": "0",
            "origQty": str(order.quantity.quantize(self.account.rules[order.symbol].step)),
            "executedQty": "0",
            "cumQuote": "0",
            "timeInForce": "GTC",
            "reduceOnly": True,
            "time": order.create_ms,
            "updateTime": order.update_ms,
        }
        body = self._plain_json(engine)
        body.update(
            {
                "orderId": str(order.algo_id),
                "orderLinkId": self._link_id(order),
                "orderStatus": STATUSES[order.status],
                "cancelType": "CancelByUser" if order.status == "CANCELED" else "UNKNOWN",
                "leavesQty": body["qty"] if order.status == "NEW" else "0",
                "stopOrderType": "Stop",
                "triggerPrice": str(order.trigger_price),
                "triggerDirection": _direction(order),
                "triggerBy": "LastPrice",
                "reduceOnly": True,
                "createdTime": str(order.create_ms),
                "updatedTime": str(order.update_ms),
            }
        )
        return body
