"""The replay exchange's trading side in Bybit v5's dialect: the one replay account
(`account.py`), asked in Bybit's words and answering in them.

A unified trading account (UTA) in one-way mode, linear USDT perpetuals only. Each request is
translated into the account engine's (Binance-worded) parameters, and each answer back: orders
(create, realtime, history, cancel), conditional orders (`bybit_conditional.py`), executions,
positions, the wallet, leverage and the account-wide margin mode. Refusals come back with the
retCode Bybit gives for the same refusal (`bybit_errors.py`).
"""

from __future__ import annotations

from pipeline.replay.account import ReplayAccount
from pipeline.replay.algo_orders import ReplayAlgoOrders
from pipeline.replay.bybit_conditional import TRIGGERED_FILL_PREFIX, BybitConditional
from pipeline.replay.bybit_errors import BybitError, from_binance, params_error
from pipeline.replay.errors import BinanceError

CATEGORY = "linear"
STATUSES = {"NEW": "New", "FILLED": "Filled", "CANCELED": "Cancelled"}
# Bybit's account-wide margin modes → the account engine's per-market margin type.
MARGIN_MODES = {"ISOLATED_MARGIN": "ISOLATED", "REGULAR_MARGIN": "CROSSED"}
LIST_LIMIT, LIST_MAX = 20, 50
EXECUTION_LIMIT, EXECUTION_MAX = 50, 100


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    text = params.get(name)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise params_error(f"{name} is not an integer") from None


def _limit(params: dict[str, str], default: int, most: int) -> int:
    limit = _int(params, "limit", default)
    assert limit is not None
    if not 1 <= limit <= most:
        raise params_error(f"limit must lie in [1, {most}]")
    return limit


def _translated(call, *args):  # type: ignore[no-untyped-def]
    """Run an account call; its Binance-worded refusal comes back in Bybit's words."""
    try:
        return call(*args)
    except BinanceError as err:
        raise from_binance(err) from None


class BybitAccount:
    """POST /v5/order/{create,cancel}, GET /v5/order/{realtime,history}, /v5/execution/list,
    /v5/position/list, /v5/account/wallet-balance; POST /v5/position/set-leverage,
    /v5/account/set-margin-mode; and the account facts ccxt asks for first."""

    def __init__(self, account: ReplayAccount, algo: ReplayAlgoOrders, now_ms):  # type: ignore[no-untyped-def]
        self.account, self._now = account, now_ms
        self.conditional = BybitConditional(account, algo, self._order)

    # -- parameters ----------------------------------------------------------------------
    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        if params.get("category", CATEGORY) != CATEGORY:
            raise params_error("category: the replay serves linear perpetuals only")
        symbol = params.get("symbol") or None
        if symbol is None:
            if required:
                raise params_error("symbol is required")
            return None
        if symbol not in self.account.rules:
            raise BybitError(10001, "Not supported symbols")
        return symbol

    def _symbols(self, params: dict[str, str]) -> list[str]:
        """The one market asked for, or (with settleCoin) every market settled in it."""
        symbol = self._symbol(params, required=False)
        if symbol is not None:
            return [symbol]
        if not params.get("settleCoin") and not params.get("baseCoin"):
            raise params_error("symbol or settleCoin is required")
        settle = params.get("settleCoin") or "USDT"
        base = params.get("baseCoin")
        return [
            m
            for m in self.account.rules
            if m.endswith(settle) and (base is None or m[: -len(settle)] == base)
        ]

    # -- account facts -------------------------------------------------------------------
    def api_key_info(self, params: dict[str, str]) -> dict:
        """GET /v5/user/query-api: a unified trading account key that may trade contracts.
        The key itself is not repeated (the replay never sends credentials back)."""
        return {
            "id": "1",
            "note": "replay",
            "apiKey": "***",
            "readOnly": 0,
            "secret": "",
            "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
            "ips": ["*"],
            "type": 1,
            "unified": 0,
            "uta": 1,
            "userID": 1,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
        }

    def account_info(self, params: dict[str, str]) -> dict:
        """GET /v5/account/info: UTA 2.0, its margin mode read off the markets."""
        with self.account._lock:
            types = {pos.margin_type for pos in self.account.positions.values()}
        mode = "ISOLATED_MARGIN" if types == {"ISOLATED"} else "REGULAR_MARGIN"
        return {
            "unifiedMarginStatus": 5,
            "marginMode": mode,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(self._now()),
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
        }

    # -- orders --------------------------------------------------------------------------
    def create_order(self, params: dict[str, str]) -> dict:
        """POST /v5/order/create → the account's new order; Bybit answers with the ids only."""
        symbol = self._symbol(params)
        if params.get("positionIdx", "0") not in ("0", ""):
            raise BybitError(10001, "position idx not match position mode")
        side = {"Buy": "BUY", "Sell": "SELL"}.get(params.get("side", ""))
        kind = {"Market": "MARKET", "Limit": "LIMIT"}.get(params.get("orderType", ""))
        if side is None:
            raise params_error("side must be Buy or Sell")
        if kind is None:
            raise params_error("orderType must be Market or Limit")
        if params.get("stopLoss") or params.get("takeProfit"):
            raise params_error(
                "TP/SL attached to an order are not served by the replay: send conditional "
                "orders (triggerPrice)"
            )
        assert symbol is not None
        if params.get("triggerPrice"):
            return self.conditional.create(symbol, side, kind, params)
        link = params.get("orderLinkId") or ""
        if link and link in self.conditional.algo.by_client_id:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        binance = {
            "symbol": symbol,
            "side": side,
            "type": kind,
            "quantity": params.get("qty", ""),
            "reduceOnly": "true" if _flag(params.get("reduceOnly")) else "false",
        }
        if params.get("orderLinkId"):
            binance["newClientOrderId"] = params["orderLinkId"]
        if kind == "LIMIT":
            binance["price"] = params.get("price", "")
            binance["timeInForce"] = {"IOC": "IOC", "FOK": "FOK"}.get(
                params.get("timeInForce", ""), "GTC"
            )
        answer = _translated(self.account.new_order, binance)
        return {"orderId": str(answer["orderId"]), "orderLinkId": params.get("orderLinkId", "")}

    def cancel_order(self, params: dict[str, str]) -> dict:
        """POST /v5/order/cancel by orderId or orderLinkId: an open order, or else a resting
        conditional one (Bybit cancels both here)."""
        symbol = self._symbol(params)
        assert symbol is not None
        try:
            answer = _translated(self.account.cancel_order, self._order_key(params, symbol))
        except BybitError as err:
            if err.ret_code != 110001:
                raise
            return self.conditional.cancel(params, symbol)
        return {"orderId": str(answer["orderId"]), "orderLinkId": self._link_id(answer)}

    def _order_key(self, params: dict[str, str], symbol: str | None) -> dict[str, str]:
        key: dict[str, str] = {"symbol": symbol or ""}
        if params.get("orderId"):
            if not params["orderId"].isdigit():
                raise BybitError(110001, "Order does not exist")
            key["orderId"] = params["orderId"]
        elif params.get("orderLinkId"):
            key["origClientOrderId"] = params["orderLinkId"]
        else:
            raise params_error("orderId or orderLinkId is required")
        return key

    def realtime_orders(self, params: dict[str, str]) -> dict:
        """GET /v5/order/realtime: one order by orderId/orderLinkId whatever its status (as
        Bybit does for recent orders), else the open orders of a market or settle coin."""
        if params.get("orderFilter") == "StopOrder":
            limit = _limit(params, LIST_LIMIT, LIST_MAX)
            listed = self.conditional.listing(params, self._symbols(params), limit, open_=True)
            return {"category": CATEGORY, "list": listed, "nextPageCursor": ""}
        if params.get("orderId") or params.get("orderLinkId"):
            return {"category": CATEGORY, "list": self._one(params), "nextPageCursor": ""}
        limit = _limit(params, LIST_LIMIT, LIST_MAX)
        rows = []
        for symbol in self._symbols(params):
            rows += _translated(self.account.open_orders, {"symbol": symbol})
        rows.sort(key=lambda o: o["time"], reverse=True)
        orders = [self._order(o) for o in rows[:limit]]
        return {"category": CATEGORY, "list": orders, "nextPageCursor": ""}

    def _one(self, params: dict[str, str]) -> list[dict]:
        for symbol in self._symbols(params):
            try:
                found = self.account.query_order(self._order_key(params, symbol))
            except BinanceError:
                continue
            return [self._order(found)]
        return []

    def order_history(self, params: dict[str, str]) -> dict:
        """GET /v5/order/history: finished (filled, cancelled) orders, newest first."""
        if params.get("orderFilter") == "StopOrder":
            limit = _limit(params, LIST_LIMIT, LIST_MAX)
            listed = self.conditional.listing(params, self._symbols(params), limit, open_=False)
            return {"category": CATEGORY, "list": listed, "nextPageCursor": ""}
        symbols = set(self._symbols(params))
        limit = _limit(params, LIST_LIMIT, LIST_MAX)
        start, end = _int(params, "startTime"), _int(params, "endTime")
        account = self.account
        with account._lock:
            chosen = [
                account._order_json(o)
                for o in account.orders.values()
                if o.symbol in symbols
                and o.status != "NEW"
                and (start is None or o.time_ms >= start)
                and (end is None or o.time_ms <= end)
                and params.get("orderId") in (None, "", str(o.order_id))
                and params.get("orderLinkId") in (None, "", o.client_order_id)
                and not o.client_order_id.startswith(TRIGGERED_FILL_PREFIX)  # listed as such
            ]
        chosen.sort(key=lambda o: o["time"], reverse=True)
        orders = [self._order(o) for o in chosen[:limit]]
        return {"category": CATEGORY, "list": orders, "nextPageCursor": ""}

    @staticmethod
    def _link_id(order: dict) -> str:
        """The orderLinkId sent, or "" for none (the engine then named it replay-<orderId>)."""
        client_id = str(order["clientOrderId"])
        return "" if client_id == f"replay-{order['orderId']}" else client_id

    def _order(self, order: dict) -> dict:
        """The account engine's order (Binance fields) as Bybit v5 lists it."""
        fee = sum(
            float(t["commission"])
            for t in self.account.user_trades(
                {"symbol": order["symbol"], "orderId": str(order["orderId"]), "limit": "1000"}
            )
        )
        qty, executed = order["origQty"], order["executedQty"]
        leaves = "0" if order["status"] != "NEW" else str(float(qty) - float(executed))
        market = order["type"] == "MARKET"
        return {
            "orderId": str(order["orderId"]),
            "orderLinkId": self._link_id(order),
            "blockTradeId": "",
            "symbol": order["symbol"],
            "price": "0" if market else order["price"],
            "qty": qty,
            "side": "Buy" if order["side"] == "BUY" else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": STATUSES[order["status"]],
            "cancelType": "CancelByUser" if order["status"] == "CANCELED" else "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": order["avgPrice"] if float(executed) else "",
            "leavesQty": leaves,
            "leavesValue": "0",
            "cumExecQty": executed,
            "cumExecValue": order["cumQuote"],
            "cumExecFee": repr(fee),
            "cumFeeDetail": {"USDT": repr(fee)} if fee else {},
            "timeInForce": "IOC" if market else order["timeInForce"],
            "orderType": "Market" if market else "Limit",
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": bool(order["reduceOnly"]),
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": str(order["time"]),
            "updatedTime": str(order["updateTime"]),
        }

    def executions(self, params: dict[str, str]) -> dict:
        """GET /v5/execution/list: one market's fills (optionally of one order), newest first."""
        symbol = self._symbol(params)
        limit = _limit(params, EXECUTION_LIMIT, EXECUTION_MAX)
        query = {"symbol": symbol or "", "limit": "1000"}
        for name in ("orderId", "startTime", "endTime"):
            if params.get(name):
                query[name] = params[name]
        if query.get("orderId") and not query["orderId"].isdigit():
            return {"category": CATEGORY, "list": [], "nextPageCursor": ""}
        if query.get("orderId"):  # a triggered conditional order fills under its own id
            query["orderId"] = self.conditional.fills_of(query["orderId"]) or query["orderId"]
        with self.account._lock:
            trades = _translated(self.account.user_trades, query)
            orders = {o.order_id: o for o in self.account.orders.values()}
        rows = []
        for trade in reversed(trades[-limit:]):
            order = orders[trade["orderId"]]
            link = {"orderId": order.order_id, "clientOrderId": order.client_order_id}
            trigger = self.conditional.triggered_by(order.client_order_id)
            rows.append(
                {
                    "symbol": trade["symbol"],
                    "orderId": str(trigger.algo_id if trigger else trade["orderId"]),
                    "orderLinkId": self.conditional._link_id(trigger)
                    if trigger
                    else self._link_id(link),
                    "side": "Buy" if trade["side"] == "BUY" else "Sell",
                    "orderPrice": trade["price"],
                    "orderQty": trade["qty"],
                    "leavesQty": "0",
                    "createType": "CreateByStopOrder" if trigger else "CreateByUser",
                    "orderType": "Market" if order.type == "MARKET" else "Limit",
                    "stopOrderType": "Stop" if trigger else "",
                    "execFee": trade["commission"],
                    "execId": str(trade["id"]),
                    "execPrice": trade["price"],
                    "execQty": trade["qty"],
                    "execType": "Trade",
                    "execValue": trade["quoteQty"],
                    "execTime": str(trade["time"]),
                    "feeCurrency": "USDT",
                    "isMaker": False,
                    "feeRate": repr(self.account.taker_fee),
                    "tradeIv": "",
                    "markIv": "",
                    "markPrice": trade["price"],
                    "indexPrice": "",
                    "underlyingPrice": "",
                    "blockTradeId": "",
                    "closedSize": "",
                    "seq": trade["id"],
                }
            )
        return {"category": CATEGORY, "list": rows, "nextPageCursor": ""}

    # -- positions and money -------------------------------------------------------------
    def positions(self, params: dict[str, str]) -> dict:
        """GET /v5/position/list: the market asked for (even flat), or the open positions of a
        settle coin."""
        symbols = self._symbols(params)
        one = self._symbol(params, required=False) is not None
        risks = _translated(self.account.position_risk, {}, 2)
        rows = [
            self._position(r)
            for r in risks
            if r["symbol"] in symbols and (one or float(r["positionAmt"]) != 0)
        ]
        return {"category": CATEGORY, "list": rows, "nextPageCursor": ""}

    @staticmethod
    def _position(risk: dict) -> dict:
        amount = float(risk["positionAmt"])
        side = "Buy" if amount > 0 else "Sell" if amount < 0 else ""
        isolated = risk["marginType"] == "isolated"
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": risk["maxNotionalValue"],
            "symbol": risk["symbol"],
            "side": side,
            "size": risk["positionAmt"].lstrip("-"),
            "avgPrice": risk["entryPrice"],
            "positionValue": risk["notional"].lstrip("-"),
            "tradeMode": 1 if isolated else 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 0,
            "leverage": risk["leverage"],
            "positionBalance": risk["isolatedWallet"] if isolated else "0",
            "markPrice": risk["markPrice"],
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": risk["maintMargin"],
            "positionIM": risk["positionInitialMargin"],
            "tpslMode": "Full",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": risk["unRealizedProfit"],
            "curRealisedPnl": "0",
            "cumRealisedPnl": "0",
            "seq": 0,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "sessionAvgPrice": "",
            "createdTime": str(risk["updateTime"]),
            "updatedTime": str(risk["updateTime"]),
        }

    def wallet_balance(self, params: dict[str, str]) -> dict:
        """GET /v5/account/wallet-balance?accountType=UNIFIED: the USDT wallet, its equity
        (wallet + unrealised P&L) and margins."""
        if params.get("accountType", "UNIFIED") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        acc = self.account.account(2)
        equity = acc["totalMarginBalance"]
        coin = {
            "coin": "USDT",
            "equity": equity,
            "usdValue": equity,
            "walletBalance": acc["totalWalletBalance"],
            "locked": "0",
            "borrowAmount": "0",
            "availableToWithdraw": acc["maxWithdrawAmount"],
            "availableToBorrow": "",
            "accruedInterest": "0",
            "totalOrderIM": acc["totalOpenOrderInitialMargin"],
            "totalPositionIM": acc["totalPositionInitialMargin"],
            "totalPositionMM": acc["totalMaintMargin"],
            "unrealisedPnl": acc["totalUnrealizedProfit"],
            "cumRealisedPnl": "0",
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
            "spotHedgingQty": "0",
        }
        return {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "totalEquity": equity,
                    "totalWalletBalance": acc["totalWalletBalance"],
                    "totalMarginBalance": equity,
                    "totalAvailableBalance": acc["availableBalance"],
                    "totalPerpUPL": acc["totalUnrealizedProfit"],
                    "totalInitialMargin": acc["totalInitialMargin"],
                    "totalMaintenanceMargin": acc["totalMaintMargin"],
                    "accountIMRate": "0",
                    "accountMMRate": "0",
                    "accountLTV": "0",
                    "coin": [coin],
                }
            ]
        }

    # -- settings ------------------------------------------------------------------------
    def set_leverage(self, params: dict[str, str]) -> dict:
        """POST /v5/position/set-leverage: one-way mode, so buy and sell leverage agree. As on
        Bybit, the leverage already set is refused (110043, "not modified")."""
        symbol = self._symbol(params)
        buy, sell = params.get("buyLeverage", ""), params.get("sellLeverage", "")
        if buy != sell:
            raise params_error("buyLeverage must equal sellLeverage in one-way mode")
        try:
            leverage = float(buy)
        except ValueError:
            raise params_error("buyLeverage is not a number") from None
        if leverage != int(leverage):
            raise params_error("the replay sets whole leverages only")
        with self.account._lock:
            if self.account.positions[symbol or ""].leverage == int(leverage):
                raise BybitError(110043, "Set leverage not modified")
        query = {"symbol": symbol or "", "leverage": str(int(leverage))}
        _translated(self.account.set_leverage, query)
        return {}

    def set_margin_mode(self, params: dict[str, str]) -> dict:
        """POST /v5/account/set-margin-mode: account-wide, so every market switches, or none
        (a market holding a position or open orders keeps the others from switching)."""
        wanted = MARGIN_MODES.get(params.get("setMarginMode", ""))
        if wanted is None:
            raise params_error("setMarginMode must be ISOLATED_MARGIN or REGULAR_MARGIN")
        account = self.account
        with account._lock:
            changing = [m for m, pos in account.positions.items() if pos.margin_type != wanted]
            busy = [
                m
                for m in changing
                if account.positions[m].qty != 0
                or any(o.symbol == m and o.status == "NEW" for o in account.orders.values())
            ]
            if busy:
                reasons = [
                    {"reasonCode": "3400045", "reasonMsg": f"{m} has a position or open orders"}
                    for m in busy
                ]
                raise BybitError(3400045, f"Set margin mode failed: {reasons}")
            for market in changing:
                _translated(account.set_margin_type, {"symbol": market, "marginType": wanted})
        return {"reasons": []}
