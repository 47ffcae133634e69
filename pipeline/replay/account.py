"""The trading side of the replay exchange: one USDⓈ-M account, its orders, fills and positions.

Pure Python and thread-safe; `server.py` does the HTTP, `signing.py` checks the request
signatures, and the server turns `BinanceError` into Binance's error answers. Requests and
answers use Binance's field names, so the real ccxt client reads them as it reads Binance.

Fills: a market order fills in full at the replay price (the open of the 1h candle in progress
at the replay clock), no slippage, paying the taker fee from the USDT wallet. That is the
backtest's entry price: an order sent right after candle t closes fills at candle t+1's open.
Limit orders rest until cancelled (never fill), so that open orders exist to reconcile.
Margin is one pool for cross and isolated positions alike (the margin type is recorded and
reported, not simulated), and there is no liquidation or funding.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from pipeline.replay.errors import BinanceError, missing
from pipeline.replay.market_data import MarketRules

TAKER_FEE = 0.0005
MAINT_MARGIN_RATE = 0.004
DEFAULT_LEVERAGE, MAX_LEVERAGE = 20, 125
MARGIN_TYPES = ("CROSSED", "ISOLATED")
QUOTE = "USDT"
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_FIRST_ORDER_ID = 8_389_765_000


@dataclass
class _Position:
    qty: Decimal = Decimal(0)  # signed: + long, − short
    entry: float = 0.0
    leverage: int = DEFAULT_LEVERAGE
    margin_type: str = "CROSSED"
    update_ms: int = 0


@dataclass
class _Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    orig_qty: Decimal
    price: float  # limit price; 0 for market orders
    reduce_only: bool
    time_in_force: str
    time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    avg_price: float = 0.0
    update_ms: int = 0


@dataclass
class _Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: float
    qty: Decimal
    commission: float
    realized_pnl: float
    time_ms: int


def _fmt(value: float) -> str:
    """A float as Binance writes numbers: plain decimals, never an exponent."""
    text = repr(float(value))
    return f"{value:.8f}" if "e" in text or "inf" in text or "nan" in text else text


def _sign(qty: Decimal) -> int:
    return (qty > 0) - (qty < 0)


@dataclass
class _Counters:
    placed: int = 0
    rejected: int = 0
    placements: dict[str, int] = field(default_factory=dict)  # accepted orders per client id
    attempts: dict[str, int] = field(default_factory=dict)  # new-order requests per client id


_ACCOUNT_POSITION_KEYS = (
    "symbol",
    "positionSide",
    "positionAmt",
    "isolatedMargin",
    "notional",
    "isolatedWallet",
    "initialMargin",
    "maintMargin",
    "updateTime",
)
_ACCOUNT_POSITION_KEYS_V2 = (
    "leverage",
    "entryPrice",
    "breakEvenPrice",
    "positionInitialMargin",
    "openOrderInitialMargin",
    "bidNotional",
    "askNotional",
)


def _account_position(risk: dict) -> dict:
    """A positionRisk entry as the account endpoints list it (v2 adds leverage and entry)."""
    entry = {key: risk[key] for key in _ACCOUNT_POSITION_KEYS}
    entry["unrealizedProfit"] = risk["unRealizedProfit"]
    if "leverage" in risk:
        entry.update({key: risk[key] for key in _ACCOUNT_POSITION_KEYS_V2})
        entry["isolated"] = risk["marginType"] == "isolated"
        entry["maxNotional"] = risk["maxNotionalValue"]
    return entry


class ReplayAccount:
    """One one-way-mode USDⓈ-M account settled in USDT."""

    def __init__(
        self,
        rules: dict[str, MarketRules],
        price: Callable[[str], float | None],
        now_ms: Callable[[], int],
        balance: float = 10_000.0,
        taker_fee: float = TAKER_FEE,
    ):
        self.rules = rules
        self._price, self._now = price, now_ms
        self.taker_fee = taker_fee
        self._lock = threading.RLock()
        self.reset(balance)

    # -- control -------------------------------------------------------------------------
    def reset(self, balance: float) -> None:
        """A fresh account: no positions, orders or trades; default leverage and margin."""
        if balance < 0:
            raise ValueError("balance must not be negative")
        with self._lock:
            self.wallet = float(balance)
            self.positions = {market: _Position() for market in self.rules}
            self.orders: dict[int, _Order] = {}
            self.by_client_id: dict[str, int] = {}
            self.trades: list[_Trade] = []
            self.counters = _Counters()
            self._next_order_id, self._next_trade_id = _FIRST_ORDER_ID, 1
            self.update_ms = self._now()

    def set_balance(self, balance: float) -> None:
        if balance < 0:
            raise ValueError("balance must not be negative")
        with self._lock:
            self.wallet = float(balance)
            self.update_ms = self._now()

    def snapshot(self) -> dict:
        """What tests and demos check: money, positions, orders and placement counters."""
        with self._lock:
            upnl = self._unrealised()
            return {
                "wallet_balance": self.wallet,
                "unrealized_pnl": upnl,
                "equity": self.wallet + upnl,
                "positions": {
                    market: {
                        "qty": float(pos.qty),
                        "entry_price": pos.entry,
                        "leverage": pos.leverage,
                        "margin_type": pos.margin_type,
                    }
                    for market, pos in self.positions.items()
                    if pos.qty != 0
                },
                "settings": {
                    market: {"leverage": pos.leverage, "margin_type": pos.margin_type}
                    for market, pos in self.positions.items()
                },
                "orders": len(self.orders),
                "open_orders": sum(o.status == "NEW" for o in self.orders.values()),
                "trades": len(self.trades),
                "placed": self.counters.placed,
                "rejected": self.counters.rejected,
                "placements": dict(self.counters.placements),
                "attempts": dict(self.counters.attempts),
            }

    # -- prices and margin ---------------------------------------------------------------
    def _mark(self, market: str, fallback: float = 0.0) -> float:
        price = self._price(market)
        return fallback if price is None else price

    def _unrealised(self) -> float:
        return sum(
            float(pos.qty) * (self._mark(market, pos.entry) - pos.entry)
            for market, pos in self.positions.items()
            if pos.qty != 0
        )

    def _position_margin(self, market: str, qty: Decimal) -> float:
        pos = self.positions[market]
        return abs(float(qty)) * self._mark(market, pos.entry) / pos.leverage

    def _open_order_margin(self, extra: _Order | None = None) -> float:
        orders = [o for o in self.orders.values() if o.status == "NEW" and not o.reduce_only]
        orders += [extra] if extra else []
        return sum(float(o.orig_qty) * o.price / self.positions[o.symbol].leverage for o in orders)

    def _check_margin(self, market: str, new_qty: Decimal, order: _Order | None = None) -> None:
        """Refuse what would lift the initial margin above wallet + unrealised P&L."""
        required = self._open_order_margin(order) + sum(
            self._position_margin(m, new_qty if m == market else pos.qty)
            for m, pos in self.positions.items()
        )
        if required > self.wallet + self._unrealised() + 1e-9:
            raise BinanceError(-2019, "Margin is insufficient.")

    # -- parameters ----------------------------------------------------------------------
    def _market(self, params: dict[str, str], required: bool = True) -> str | None:
        market = params.get("symbol")
        if not market:
            if required:
                raise missing("symbol")
            return None
        if market not in self.rules:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    def _quantity(self, params: dict[str, str], rules: MarketRules) -> Decimal:
        qty = _positive(params, "quantity", -4003, "Quantity less than or equal to zero.")
        if qty % rules.step != 0:
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < rules.min_qty:
            raise BinanceError(-4004, "Quantity less than min quantity.")
        if qty > rules.max_qty:
            raise BinanceError(-4005, "Quantity greater than max quantity.")
        return qty

    def _limit_price(self, params: dict[str, str], rules: MarketRules) -> float:
        price = _positive(params, "price", -4001, "Price less than 0.")
        if price % rules.tick != 0:
            raise BinanceError(-4014, "Price not increased by tick size.")
        return float(price)

    def _client_id(self, params: dict[str, str]) -> str:
        client_id = params.get("newClientOrderId")
        if client_id is None:
            return f"replay-{self._next_order_id}"
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(-4015, "Client order id is not valid.")
        if client_id in self.by_client_id:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        return client_id

    # -- orders --------------------------------------------------------------------------
    def new_order(self, params: dict[str, str]) -> dict:
        """POST /fapi/v1/order: validate, then fill (market) or rest (limit); all or nothing."""
        with self._lock:
            client_id = params.get("newClientOrderId")
            if client_id:
                self.counters.attempts[client_id] = self.counters.attempts.get(client_id, 0) + 1
            try:
                order = self._accept(params)
            except BinanceError:
                self.counters.rejected += 1
                raise
            self.counters.placed += 1
            cid = order.client_order_id
            self.counters.placements[cid] = self.counters.placements.get(cid, 0) + 1
            return self._order_json(order)

    def _accept(self, params: dict[str, str]) -> _Order:
        market = self._market(params)
        assert market is not None
        rules = self.rules[market]
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        kind = params.get("type", "")
        if kind not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        client_id = self._client_id(params)
        qty = self._quantity(params, rules)
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        now = self._now()
        if kind == "LIMIT":
            if not params.get("timeInForce"):
                raise missing("timeInForce")
            price = self._limit_price(params, rules)
        else:
            market_price = self._price(market)
            if market_price is None:
                raise BinanceError(-1121, "Invalid symbol.")  # not listed yet at the replay clock
            price = market_price
        pos = self.positions[market]
        delta = qty if side == "BUY" else -qty
        if reduce_only:
            if pos.qty == 0 or _sign(delta) == _sign(pos.qty):
                raise BinanceError(-2022, "ReduceOnly Order is rejected.")
            qty = min(qty, abs(pos.qty))  # never more than closes the position
            delta = qty if side == "BUY" else -qty
        elif float(qty) * price < rules.min_notional:
            raise BinanceError(
                -4164,
                f"Order's notional must be no smaller than {rules.min_notional:g} "
                "(unless you choose reduce only).",
            )
        order = _Order(
            order_id=self._next_order_id,
            client_order_id=client_id,
            symbol=market,
            side=side,
            type=kind,
            orig_qty=qty,
            price=price if kind == "LIMIT" else 0.0,
            reduce_only=reduce_only,
            time_in_force=params.get("timeInForce", "GTC"),
            time_ms=now,
            update_ms=now,
        )
        if kind == "LIMIT":
            if not reduce_only:
                self._check_margin(market, pos.qty, order)
        elif abs(pos.qty + delta) > abs(pos.qty):
            self._check_margin(market, pos.qty + delta)
        self._next_order_id += 1
        self.orders[order.order_id] = order
        self.by_client_id[client_id] = order.order_id
        if kind == "MARKET":
            self._fill(order, delta, price, now)
        return order

    def _fill(self, order: _Order, delta: Decimal, price: float, now: int) -> None:
        """Fill in full at `price`: fee and realised P&L to the wallet, position updated."""
        pos = self.positions[order.symbol]
        qty = abs(delta)
        notional = float(qty) * price
        fee = notional * self.taker_fee
        realised = 0.0
        old = pos.qty
        if old != 0 and _sign(delta) != _sign(old):
            closed = min(qty, abs(old))
            realised = float(closed) * (price - pos.entry) * _sign(old)
        new = old + delta
        if new == 0:
            pos.entry = 0.0
        elif old == 0 or _sign(new) != _sign(old):
            pos.entry = price  # opened, or flipped: the remainder opened at this price
        elif abs(new) > abs(old):
            pos.entry = (float(abs(old)) * pos.entry + notional) / float(abs(new))
        pos.qty, pos.update_ms = new, now
        self.wallet += realised - fee
        self.update_ms = now
        order.status, order.executed_qty = "FILLED", qty
        order.avg_price, order.update_ms = price, now
        self.trades.append(
            _Trade(
                trade_id=self._next_trade_id,
                order_id=order.order_id,
                symbol=order.symbol,
                side=order.side,
                price=price,
                qty=qty,
                commission=fee,
                realized_pnl=realised,
                time_ms=now,
            )
        )
        self._next_trade_id += 1

    def fill_reducing(
        self,
        market: str,
        side: str,
        quantity: Decimal | None,
        price: float,
        at_ms: int,
        client_id: str,
    ) -> _Order | None:
        """A triggered reduce-only market order (`algo_orders.py`): filled in full at `price`
        at `at_ms`, at most the position (all of it when `quantity` is None); None when there
        is no position on the other side to reduce (the exchange expires the order)."""
        with self._lock:
            pos = self.positions[market]
            delta_sign = 1 if side == "BUY" else -1
            if pos.qty == 0 or delta_sign == _sign(pos.qty):
                return None
            qty = abs(pos.qty) if quantity is None else min(quantity, abs(pos.qty))
            order = _Order(
                order_id=self._next_order_id,
                client_order_id=client_id,
                symbol=market,
                side=side,
                type="MARKET",
                orig_qty=qty,
                price=0.0,
                reduce_only=True,
                time_in_force="GTC",
                time_ms=at_ms,
                update_ms=at_ms,
            )
            self._next_order_id += 1
            self.orders[order.order_id] = order
            self.by_client_id[client_id] = order.order_id
            self._fill(order, qty * delta_sign, price, at_ms)
            return order

    def _find(self, params: dict[str, str], code: int, msg: str) -> _Order:
        market = self._market(params)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Either orderId or origClientOrderId must be sent.")
        try:
            key = int(order_id) if order_id is not None else self.by_client_id.get(client_id or "")
        except ValueError:
            raise missing("orderId") from None
        order = self.orders.get(key) if key is not None else None
        if order is None or order.symbol != market:
            raise BinanceError(code, msg)
        return order

    def query_order(self, params: dict[str, str]) -> dict:
        """GET /fapi/v1/order by orderId or origClientOrderId."""
        with self._lock:
            return self._order_json(self._find(params, -2013, "Order does not exist."))

    def cancel_order(self, params: dict[str, str]) -> dict:
        """DELETE /fapi/v1/order: only an open order can be cancelled."""
        with self._lock:
            order = self._find(params, -2011, "Unknown order sent.")
            if order.status != "NEW":
                raise BinanceError(-2011, "Unknown order sent.")
            order.status, order.update_ms = "CANCELED", self._now()
            return self._order_json(order)

    def open_orders(self, params: dict[str, str]) -> list[dict]:
        with self._lock:
            market = self._market(params, required=False)
            return [
                self._order_json(o)
                for o in self.orders.values()
                if o.status == "NEW" and market in (None, o.symbol)
            ]

    def user_trades(self, params: dict[str, str]) -> list[dict]:
        """GET /fapi/v1/userTrades: one market's fills, optionally of one order."""
        with self._lock:
            market = self._market(params)
            try:
                limit = int(params.get("limit", 500))
                order_id = int(params["orderId"]) if "orderId" in params else None
                start = int(params.get("startTime", 0))
                end = int(params["endTime"]) if "endTime" in params else None
                from_id = int(params.get("fromId", 0))
            except ValueError:
                raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
            if not 1 <= limit <= 1000:
                raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
            chosen = [
                t
                for t in self.trades
                if t.symbol == market
                and order_id in (None, t.order_id)
                and t.time_ms >= start
                and (end is None or t.time_ms <= end)
                and t.trade_id >= from_id
            ]
            chosen = chosen[:limit] if from_id else chosen[-limit:]
            return [self._trade_json(t) for t in chosen]

    # -- settings ------------------------------------------------------------------------
    def set_leverage(self, params: dict[str, str]) -> dict:
        with self._lock:
            market = self._market(params)
            assert market is not None
            text = params.get("leverage", "")
            if not text.isdigit() or not 1 <= int(text) <= MAX_LEVERAGE:
                raise BinanceError(-4028, f"Leverage {text} is not valid")
            pos = self.positions[market]
            pos.leverage = int(text)
            return {
                "leverage": pos.leverage,
                "maxNotionalValue": "1000000000",
                "symbol": market,
            }

    def set_margin_type(self, params: dict[str, str]) -> dict:
        with self._lock:
            market = self._market(params)
            assert market is not None
            margin_type = params.get("marginType", "").upper()
            if margin_type not in MARGIN_TYPES:
                raise missing("marginType")
            pos = self.positions[market]
            if margin_type == pos.margin_type:
                raise BinanceError(-4046, "No need to change margin type.")
            if pos.qty != 0:
                raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
            if any(o.symbol == market and o.status == "NEW" for o in self.orders.values()):
                raise BinanceError(
                    -4047, "Margin type cannot be changed if there exists open orders."
                )
            pos.margin_type = margin_type
            return {"code": 200, "msg": "success"}

    # -- account views -------------------------------------------------------------------
    def _position_json(self, market: str, version: int) -> dict:
        pos = self.positions[market]
        mark = self._mark(market, pos.entry)
        notional = float(pos.qty) * mark
        margin = abs(notional) / pos.leverage
        open_margin = sum(
            float(o.orig_qty) * o.price / pos.leverage
            for o in self.orders.values()
            if o.symbol == market and o.status == "NEW" and not o.reduce_only
        )
        upnl = float(pos.qty) * (mark - pos.entry) if pos.qty else 0.0
        isolated = pos.margin_type == "ISOLATED"
        isolated_wallet = abs(float(pos.qty)) * pos.entry / pos.leverage if isolated else 0.0
        body = {
            "symbol": market,
            "positionSide": "BOTH",
            "positionAmt": str(pos.qty.quantize(self.rules[market].step)),
            "entryPrice": _fmt(pos.entry),
            "breakEvenPrice": _fmt(pos.entry),
            "markPrice": _fmt(mark),
            "unRealizedProfit": _fmt(upnl),
            "liquidationPrice": "0",
            "isolatedMargin": _fmt(isolated_wallet + upnl if isolated else 0.0),
            "notional": _fmt(notional),
            "marginAsset": QUOTE,
            "isolatedWallet": _fmt(isolated_wallet),
            "initialMargin": _fmt(margin + open_margin),
            "maintMargin": _fmt(abs(notional) * MAINT_MARGIN_RATE),
            "positionInitialMargin": _fmt(margin),
            "openOrderInitialMargin": _fmt(open_margin),
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": pos.update_ms,
        }
        if version == 2:
            body.update(
                {
                    "leverage": str(pos.leverage),
                    "marginType": "isolated" if isolated else "cross",
                    "isAutoAddMargin": "false",
                    "maxNotionalValue": "1000000000",
                }
            )
        return body

    def position_risk(self, params: dict[str, str], version: int = 3) -> list[dict]:
        """GET /fapi/v3/positionRisk (open positions only) or v2 (every market)."""
        with self._lock:
            market = self._market(params, required=False)
            return [
                self._position_json(m, version)
                for m, pos in self.positions.items()
                if market in (None, m) and (pos.qty != 0 or version == 2 or market == m)
            ]

    def account(self, version: int = 3) -> dict:
        """GET /fapi/v3/account (v2 also lists leverage and entry price per position)."""
        with self._lock:
            upnl = self._unrealised()
            positions = [self._position_json(m, version) for m in self.positions]
            position_margin = sum(float(p["positionInitialMargin"]) for p in positions)
            open_margin = self._open_order_margin()
            initial = position_margin + open_margin
            maint = sum(float(p["maintMargin"]) for p in positions)
            margin_balance = self.wallet + upnl
            available = max(0.0, margin_balance - initial)
            money = {
                "InitialMargin": _fmt(initial),
                "MaintMargin": _fmt(maint),
                "WalletBalance": _fmt(self.wallet),
                "UnrealizedProfit": _fmt(upnl),
                "MarginBalance": _fmt(margin_balance),
                "PositionInitialMargin": _fmt(position_margin),
                "OpenOrderInitialMargin": _fmt(open_margin),
                "CrossWalletBalance": _fmt(self.wallet),
                "CrossUnPnl": _fmt(upnl),
            }
            asset = {key[0].lower() + key[1:]: value for key, value in money.items()}
            asset.update(
                {
                    "asset": QUOTE,
                    "availableBalance": _fmt(available),
                    "maxWithdrawAmount": _fmt(min(self.wallet, available)),
                    "marginAvailable": True,
                    "updateTime": self.update_ms,
                }
            )
            shown = [
                _account_position(p)
                for p, pos in zip(positions, self.positions.values(), strict=True)
                if version == 2 or pos.qty != 0
            ]
            return {
                **{f"total{key}": value for key, value in money.items()},
                "availableBalance": _fmt(available),
                "maxWithdrawAmount": _fmt(min(self.wallet, available)),
                "canTrade": True,
                "canDeposit": True,
                "canWithdraw": True,
                "feeTier": 0,
                "updateTime": self.update_ms,
                "assets": [asset],
                "positions": shown,
            }

    def leverage_brackets(self, params: dict[str, str]) -> list[dict] | dict:
        """GET /fapi/v1/leverageBracket: one bracket per market (ccxt reads the maint rate)."""
        with self._lock:
            market = self._market(params, required=False)
            brackets = [
                {
                    "symbol": m,
                    "notionalCoef": 1.0,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": MAX_LEVERAGE,
                            "notionalCap": 1_000_000_000,
                            "notionalFloor": 0,
                            "maintMarginRatio": MAINT_MARGIN_RATE,
                            "cum": 0.0,
                        }
                    ],
                }
                for m in self.positions
                if market in (None, m)
            ]
            return brackets[0] if market else brackets

    # -- JSON ----------------------------------------------------------------------------
    def _order_json(self, order: _Order) -> dict:
        step = self.rules[order.symbol].step
        executed = order.executed_qty.quantize(step)
        return {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "status": order.status,
            "clientOrderId": order.client_order_id,
            "price": _fmt(order.price),
            "avgPrice": _fmt(order.avg_price),
            "origQty": str(order.orig_qty.quantize(step)),
            "executedQty": str(executed),
            "cumQty": str(executed),
            "cumQuote": _fmt(float(order.executed_qty) * order.avg_price),
            "timeInForce": order.time_in_force,
            "type": order.type,
            "origType": order.type,
            "reduceOnly": order.reduce_only,
            "closePosition": False,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": order.time_ms,
            "updateTime": order.update_ms,
        }

    def _trade_json(self, trade: _Trade) -> dict:
        qty = trade.qty.quantize(self.rules[trade.symbol].step)
        return {
            "buyer": trade.side == "BUY",
            "commission": _fmt(trade.commission),
            "commissionAsset": QUOTE,
            "id": trade.trade_id,
            "maker": False,
            "orderId": trade.order_id,
            "price": _fmt(trade.price),
            "qty": str(qty),
            "quoteQty": _fmt(float(trade.qty) * trade.price),
            "realizedPnl": _fmt(trade.realized_pnl),
            "side": trade.side,
            "positionSide": "BOTH",
            "symbol": trade.symbol,
            "time": trade.time_ms,
        }


def _positive(params: dict[str, str], name: str, code: int, message: str) -> Decimal:
    """A decimal parameter that must be present and > 0, refused as Binance refuses it."""
    try:
        value = Decimal(params.get(name) or "")
    except InvalidOperation:
        raise missing(name) from None
    if not value.is_finite() or value <= 0:
        raise BinanceError(code, message)
    return value
