"""`CcxtBroker`: the `Broker` protocol over an exchange account through ccxt (Binance USDⓈ-M or
Bybit's unified trading account, or the replay exchange, which speaks both, offline).

Orders are idempotent by client order id: after any failure whose outcome is unknown (network
error, time-out, 5xx, rate limit) the broker looks the order up by its client order id before
it sends it again, so a retried order is never placed twice; a duplicate-id answer also leads
to the look-up. The exchange's refusals (margin, reduce-only, quantity filters) are results,
not exceptions. Quantities are rounded down to the market's lot step with ccxt's
`amount_to_precision`; a result always reports what was actually filled.

The API key and secret come from the environment (`SIGNALS_API_KEY`, `SIGNALS_API_SECRET`) and
never appear in this module's messages, its repr, or (redacted) in ccxt's debug log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import ccxt

from pipeline.exchange.client import make_exchange
from pipeline.exchange.ids import BINANCE_USDM, BYBIT, DEFAULT_EXCHANGE
from pipeline.exchange.retry import RetryPolicy, retryable
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    ENV_API_KEY,
    ENV_API_SECRET,
    FILLED,
    OPEN,
    REJECTED,
    BrokerError,
    BrokerPosition,
    ExitOrder,
    MarketRules,
    OpenOrder,
    OrderRequest,
    OrderResult,
)
from pipeline.execution.market_rules import ccxt_market_rules

log = logging.getLogger(__name__)

TRADING_EXCHANGES = (BINANCE_USDM, BYBIT)
MARGIN_MODES = ("isolated", "cross")
# Binance futures: -4116 "ClientOrderId is duplicated."; Bybit: 110072 "OrderLinkedID is duplicate"
DUPLICATE_CLIENT_ID = ("-4116", "110072")
# Bybit refuses to set the leverage a market already has: that is success here.
LEVERAGE_NOT_MODIFIED = "110043"
RETRYABLE = retryable()
# The exchange answered and refused: nothing was placed, nothing changed.
REFUSALS = (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadRequest, ccxt.OperationRejected)
# How many times a market order still reported open is looked up again before giving it back.
FILL_CHECKS = 3
# ccxt's unified parameters for a resting exit (Binance: STOP_MARKET / TAKE_PROFIT_MARKET
# through the algo order API; Bybit: conditional orders), and the flag that reads them back.
EXIT_PRICE_PARAM = {"stop": "stopLossPrice", "take_profit": "takeProfitPrice"}
CONDITIONAL = {"trigger": True}

T = TypeVar("T")


class BrokerConfigError(ValueError):
    """The broker cannot be built as configured (credentials missing, unsupported exchange)."""


class BrokerAuthError(BrokerError):
    """The exchange refused the API credentials: nothing was done; fix the key and secret."""


class _Redact(logging.Filter):
    """Scrubs registered credentials from log records (ccxt logs request headers at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if any(secret in text for secret in self._secrets):
            for secret in self._secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


_REDACT = _Redact()


def _guard_logs(exchange: ccxt.Exchange, secrets: Iterable[str]) -> None:
    """ccxt's own DEBUG record of each request carries the X-MBX-APIKEY header: redact it."""
    _REDACT.add(*secrets)
    if _REDACT not in exchange.logger.filters:
        exchange.logger.addFilter(_REDACT)


def _prepare(exchange: ccxt.Exchange) -> None:
    """ccxt settings a futures broker needs, whatever host the exchange points at."""
    # ccxt picks Binance's futures error classes by the URL's host (fapi.binance.com); pointed
    # elsewhere (the replay exchange), -2019 would be a bare ExchangeError, not InsufficientFunds.
    linear = exchange.exceptions.get("linear", {}).get("exact", {})
    exchange.exceptions = {
        **exchange.exceptions,
        "exact": {**exchange.exceptions.get("exact", {}), **linear},
    }
    # With keys set, load_markets would also fetch spot currencies (a sapi call): not needed.
    exchange.options["fetchCurrencies"] = False
    # Open orders of every market in one request: what reconciliation asks for.
    exchange.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
    # The margin mode already set is what we asked for.
    exchange.options.setdefault("setMarginMode", {})["throwMarginModeAlreadySet"] = False
    if exchange.id == BYBIT:  # bybit's load_markets asks the coin list (an asset call) with keys
        exchange.has = {**exchange.has, "fetchCurrencies": False}


def _words(err: Exception) -> str:
    """The exchange's own message when the error carries Binance's or Bybit's JSON body."""
    text = str(err)
    for field in ('"msg":"', '"retMsg":"'):
        start = text.find(field)
        if start >= 0:
            end = text.find('"', start + len(field))
            if end > start:
                return text[start + len(field) : end]
    return text


class CcxtBroker:
    """An exchange account through a ccxt client that holds the credentials."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        retry: RetryPolicy | None = None,
        quote: str = "USDT",
        sleep: Callable[[float], None] = time.sleep,
    ):
        if exchange.id not in TRADING_EXCHANGES:
            raise BrokerConfigError(
                f"trading through {exchange.id!r} is not supported; "
                f"supported: {', '.join(TRADING_EXCHANGES)}"
            )
        self.exchange = exchange
        self.name = str(exchange.id)
        self.retry = retry or RetryPolicy()
        self.quote = quote
        self._sleep = sleep
        self._markets_loaded = False
        _prepare(exchange)
        _guard_logs(exchange, [exchange.apiKey or "", exchange.secret or ""])

    @classmethod
    def from_env(
        cls,
        exchange_id: str = DEFAULT_EXCHANGE,
        api_url: str | None = None,
        timeout_ms: int = 10_000,
        retry: RetryPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> CcxtBroker:
        """A broker whose credentials are `SIGNALS_API_KEY` and `SIGNALS_API_SECRET`."""
        env = os.environ if environ is None else environ
        key, secret = env.get(ENV_API_KEY, ""), env.get(ENV_API_SECRET, "")
        missing = [
            name for name, value in ((ENV_API_KEY, key), (ENV_API_SECRET, secret)) if not value
        ]
        if missing:
            raise BrokerConfigError(
                f"{' and '.join(missing)} not set: the exchange broker reads its API key and "
                f"secret from {ENV_API_KEY} and {ENV_API_SECRET}"
            )
        if exchange_id not in TRADING_EXCHANGES:
            raise BrokerConfigError(
                f"trading through {exchange_id!r} is not supported; "
                f"supported: {', '.join(TRADING_EXCHANGES)}"
            )
        exchange = make_exchange(exchange_id, api_url, timeout_ms, api_key=key, secret=secret)
        return cls(exchange, retry)

    def __repr__(self) -> str:
        return f"CcxtBroker(name={self.name!r})"

    __str__ = __repr__

    # -- plumbing ------------------------------------------------------------------------
    def _call(self, what: str, call: Callable[[], T]) -> T:
        """A read or an idempotent write: retried on transient errors, BrokerError otherwise."""
        for attempt in range(self.retry.attempts):
            try:
                return call()
            except ccxt.AuthenticationError as err:
                raise self._auth_error(what, err) from None
            except RETRYABLE as err:
                if attempt + 1 == self.retry.attempts:
                    raise BrokerError(
                        f"{what}: gave up after {self.retry.attempts} attempts; last error "
                        f"{type(err).__name__}: {err}"
                    ) from err
                self._wait(what, err, attempt)
            except ccxt.BaseError as err:
                raise BrokerError(f"{what}: {type(err).__name__}: {err}") from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, what: str, err: Exception, attempt: int) -> None:
        wait = self.retry.delay(attempt)
        log.warning("%s: %s (%s); retrying in %.2fs", what, type(err).__name__, err, wait)
        self._sleep(wait)

    def _auth_error(self, what: str, err: Exception) -> BrokerAuthError:
        return BrokerAuthError(
            f"{what}: {self.name} refused the API credentials ({ENV_API_KEY} / "
            f"{ENV_API_SECRET}): {_words(err)}"
        )

    def _markets(self) -> None:
        if not self._markets_loaded:
            self._call(f"{self.name} markets", self.exchange.load_markets)
            self._markets_loaded = True

    def _now_ms(self) -> int:
        """The exchange's clock (the replay clock when replaying); ours if it cannot answer."""
        try:
            return int(self.exchange.fetch_time())
        except ccxt.BaseError:
            return int(self.exchange.milliseconds())

    # -- reads ---------------------------------------------------------------------------
    def price(self, symbol: str) -> float:
        self._markets()
        what = f"{self.name} {symbol} price"
        ticker = self._call(what, lambda: self.exchange.fetch_ticker(symbol))
        if ticker.get("last") is None:
            raise BrokerError(f"{what}: the ticker has no last price")
        return float(ticker["last"])

    def equity(self) -> float:
        """Wallet balance plus unrealised P&L in the quote currency (Binance's margin balance)."""
        self._markets()
        what = f"{self.name} equity"
        balance = self._call(what, self.exchange.fetch_balance)
        total = balance.get(self.quote, {}).get("total")
        if self.name == BYBIT:  # ccxt's total is Bybit's walletBalance; equity adds the P&L
            total = _bybit_equity(balance.get("info") or {}, self.quote)
        if total is None:
            info = balance.get("info") or {}
            total = info.get("totalMarginBalance")
        if total is None:
            raise BrokerError(f"{what}: no {self.quote} balance in the account")
        return float(total)

    def positions(self) -> dict[str, BrokerPosition]:
        self._markets()
        raw = self._call(f"{self.name} positions", self.exchange.fetch_positions)
        out: dict[str, BrokerPosition] = {}
        for position in raw:
            qty = self._signed_quantity(position)
            if qty:
                out[position["symbol"]] = BrokerPosition(
                    symbol=position["symbol"],
                    quantity=qty,
                    entry_price=float(position.get("entryPrice") or 0.0),
                )
        return out

    @staticmethod
    def _signed_quantity(position: dict[str, Any]) -> float:
        amount = (position.get("info") or {}).get("positionAmt")
        if amount is not None:
            return float(amount)
        contracts = float(position.get("contracts") or 0.0)
        return -contracts if position.get("side") == "short" else contracts

    def open_orders(self, symbol: str | None = None, conditional: bool = True) -> list[OpenOrder]:
        """One market's resting orders (weight 1), or every market's (weight 40: ccxt's rate
        limiter then waits about 2 s) when no symbol is given."""
        self._markets()
        what = f"{self.name} {symbol + ' ' if symbol else ''}open orders"
        plain = self._call(what, lambda: self.exchange.fetch_open_orders(symbol))
        what = f"{self.name} {symbol + ' ' if symbol else ''}open trigger orders"
        resting = (
            self._call(
                what, lambda: self.exchange.fetch_open_orders(symbol, params=dict(CONDITIONAL))
            )
            if conditional
            else []
        )
        return [
            OpenOrder(
                client_order_id=str(o.get("clientOrderId") or ""),
                exchange_order_id=str(o["id"]),
                symbol=o["symbol"],
                side=o["side"],
                quantity=float(
                    o["remaining"] if o.get("remaining") is not None else o.get("amount") or 0.0
                ),
                conditional=conditional,
            )
            for raws, conditional in ((plain, False), (resting, True))
            for o in raws
        ]

    def market_rules(self, symbol: str) -> MarketRules:
        """The amount step and minimum notional of the exchange's loaded markets (Binance's
        LOT_SIZE stepSize and MIN_NOTIONAL filters)."""
        self._markets()
        return ccxt_market_rules(self.exchange, symbol)

    # -- settings ------------------------------------------------------------------------
    def configure_market(self, symbol: str, leverage: int, margin_mode: str) -> None:
        """Margin mode then leverage; "already set" answers count as success."""
        if margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {', '.join(MARGIN_MODES)}")
        self._markets()
        what = f"{self.name} {symbol} margin mode {margin_mode}"

        def set_mode() -> None:
            with contextlib.suppress(ccxt.MarginModeAlreadySet):
                self.exchange.set_margin_mode(margin_mode, symbol)

        self._call(what, set_mode)
        what = f"{self.name} {symbol} leverage {leverage}"

        def set_leverage() -> None:
            try:
                self.exchange.set_leverage(leverage, symbol)
            except ccxt.BadRequest as err:
                if LEVERAGE_NOT_MODIFIED not in str(err):
                    raise

        self._call(what, set_leverage)

    # -- orders --------------------------------------------------------------------------
    def place(self, order: OrderRequest) -> OrderResult:
        """A market order, placed at most once whatever fails in between (see module doc)."""
        self._markets()
        what = (
            f"{self.name} {order.side} {order.quantity} {order.symbol} "
            f"(client order id {order.client_order_id})"
        )
        try:
            amount = float(self.exchange.amount_to_precision(order.symbol, order.quantity))
        except ccxt.BaseError as err:  # below one lot step, or an unknown market
            return self._rejected(order, _words(err))
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        if order.reduce_only:
            params["reduceOnly"] = True
        return self._submit(
            order,
            what,
            lambda: self.exchange.create_order(
                order.symbol, "market", order.side, amount, None, params
            ),
            lambda: self._lookup(order.symbol, order.client_order_id),
            lambda raw: self._result(order.symbol, order.client_order_id, raw),
        )

    def _submit(
        self,
        order: OrderRequest | ExitOrder,
        what: str,
        create: Callable[[], dict[str, Any]],
        look: Callable[[], dict[str, Any] | None],
        result: Callable[[dict[str, Any]], OrderResult],
    ) -> OrderResult:
        """Send a new order at most once: after an unknown outcome it is looked up by its
        client order id before it is sent again, and once more when the attempts are spent."""
        maybe_sent = False
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            try:
                if maybe_sent:  # an earlier attempt may have reached the exchange
                    found = look()
                    if found is not None:
                        log.info("%s: on the exchange after %s; not sent again", what, last)
                        return result(found)
                maybe_sent = True
                return result(create())
            except ccxt.AuthenticationError as err:
                raise self._auth_error(what, err) from None
            except RETRYABLE as err:
                last = err
                if attempt + 1 < self.retry.attempts:
                    self._wait(what, err, attempt)
            except REFUSALS as err:
                if any(code in str(err) for code in DUPLICATE_CLIENT_ID):
                    found = self._call(what, look)
                    if found is None:
                        raise BrokerError(
                            f"{what}: the exchange says the client order id is taken, but has "
                            f"no order with it: {_words(err)}"
                        ) from err
                    if found.get("side") != order.side:
                        log.warning(
                            "%s: client order id already used by a %s order",
                            what,
                            found.get("side"),
                        )
                    return result(found)
                return self._rejected(order, _words(err))
            except ccxt.BaseError as err:
                raise BrokerError(f"{what}: unexpected answer {type(err).__name__}: {err}") from err
        try:
            found = look()  # the last attempt may have gone through
        except ccxt.BaseError:
            found = None
        if found is not None:
            return result(found)
        raise BrokerError(
            f"{what}: outcome unknown after {self.retry.attempts} attempts; reconcile before "
            f"trading again; last error {type(last).__name__}: {last}"
        )

    def lookup(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """What became of the order with this client order id, or None when the exchange has
        none (it never arrived): how the manager resolves an order a run left unanswered, and
        learns what became of a resting exit (asked among trigger orders when no plain order
        has the id)."""
        self._markets()
        what = f"{self.name} {symbol} order {client_order_id}"
        found = self._call(what, lambda: self._lookup(symbol, client_order_id))
        if found is not None:
            return self._result(symbol, client_order_id, found)
        resting = self._call(what, lambda: self._lookup_exit(symbol, client_order_id))
        return None if resting is None else self._exit_result(symbol, client_order_id, resting)

    # -- resting exits ----------------------------------------------------------------------
    def place_exit(self, order: ExitOrder) -> OrderResult:
        """A reduce-only stop or take-profit market order resting at its trigger price, placed
        at most once (as `place`); its trigger price rounded to the market's tick by ccxt."""
        self._markets()
        what = (
            f"{self.name} {order.kind} {order.side} {order.quantity} {order.symbol} at "
            f"{order.trigger_price} (client order id {order.client_order_id})"
        )
        try:
            amount = float(self.exchange.amount_to_precision(order.symbol, order.quantity))
        except ccxt.BaseError as err:
            return self._rejected(order, _words(err))
        params: dict[str, Any] = {
            "clientOrderId": order.client_order_id,
            EXIT_PRICE_PARAM[order.kind]: order.trigger_price,
            "reduceOnly": True,
        }
        return self._submit(
            order,
            what,
            lambda: self.exchange.create_order(
                order.symbol, "market", order.side, amount, None, params
            ),
            lambda: self._lookup_exit(order.symbol, order.client_order_id),
            lambda raw: self._exit_result(order.symbol, order.client_order_id, raw),
        )

    def cancel_exit(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel a resting exit; one that triggered (or expired) first reports that."""
        self._markets()
        what = f"{self.name} cancel {symbol} exit {client_order_id}"

        def cancel_once() -> dict[str, Any] | None:
            try:
                params = {"clientOrderId": client_order_id, **CONDITIONAL}
                if self.name == BYBIT:  # one cancel endpoint, by orderLinkId, for every order
                    params = {"orderLinkId": client_order_id}
                return self.exchange.cancel_order(None, symbol, params)
            except ccxt.OrderNotFound:
                return None

        if self._call(what, cancel_once) is not None:
            return OrderResult(
                client_order_id, None, CANCELLED, 0.0, None, 0.0, self._now_ms(), "cancelled"
            )
        found = self._call(what, lambda: self._lookup_exit(symbol, client_order_id))
        if found is None:
            return self._rejected_id(client_order_id, "no such order on the exchange")
        return self._exit_result(symbol, client_order_id, found)

    def _lookup_exit(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The trigger order with this client order id, or None."""
        if self.name == BYBIT:
            return self._bybit_lookup(symbol, client_order_id, conditional=True)
        try:
            params = {"clientOrderId": client_order_id, **CONDITIONAL}
            return self.exchange.fetch_order(None, symbol, params)
        except ccxt.OrderNotFound:
            return None

    def _exit_result(self, symbol: str, client_order_id: str, raw: dict[str, Any]) -> OrderResult:
        """A resting exit's state: OPEN while it rests, CANCELLED when cancelled or expired
        (nothing left to reduce), and once triggered, the fill of the market order it became."""
        if raw.get("status") is None:  # Bybit acknowledges a new order by its ids only
            what = f"{self.name} {symbol} exit {client_order_id}"
            raw = self._call(what, lambda: self._lookup_exit(symbol, client_order_id)) or raw
        status = raw.get("status")
        if status == "closed":
            actual = (raw.get("info") or {}).get("actualOrderId")
            if actual:
                what = f"{self.name} {symbol} order {actual} (exit {client_order_id})"
                filled = self._call(what, lambda: self.exchange.fetch_order(str(actual), symbol))
                return self._result(symbol, client_order_id, filled)
            if self.name == BYBIT:  # a triggered conditional order fills under its own id
                return self._result(symbol, client_order_id, raw)
        state = {"open": OPEN, "canceled": CANCELLED, "expired": CANCELLED}.get(status or "")
        if state is None:
            return self._rejected_id(client_order_id, f"exit order {status}")
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=str(raw["id"]) if raw.get("id") is not None else None,
            status=state,
            filled=0.0,
            average_price=None,
            fee=0.0,
            timestamp_ms=int(raw.get("lastUpdateTimestamp") or raw.get("timestamp") or 0),
            reason=None if state == OPEN else f"exit {status}",
        )

    def _lookup(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The order with this client order id, or None when the exchange has none."""
        if self.name == BYBIT:
            return self._bybit_lookup(symbol, client_order_id)
        try:
            return self.exchange.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
        except ccxt.OrderNotFound:
            return None

    def _bybit_lookup(
        self, symbol: str, client_order_id: str, conditional: bool = False
    ) -> dict[str, Any] | None:
        """Bybit's /v5/order/realtime by orderLinkId (its recent orders, open or not; with
        `conditional`, its conditional orders): ccxt's fetch_order asks by order id only."""
        market = self.exchange.market(symbol)
        query = {"category": "linear", "symbol": market["id"], "orderLinkId": client_order_id}
        if conditional:
            query["orderFilter"] = "StopOrder"
        response = self.exchange.privateGetV5OrderRealtime(query)
        found = (response.get("result") or {}).get("list") or []
        return self.exchange.parse_order(found[0], market) if found else None

    def _rejected(self, order: OrderRequest | ExitOrder, reason: str) -> OrderResult:
        log.info("%s order %s rejected: %s", self.name, order.client_order_id, reason)
        return self._rejected_id(order.client_order_id, reason)

    def _rejected_id(self, client_order_id: str, reason: str) -> OrderResult:
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=None,
            status=REJECTED,
            filled=0.0,
            average_price=None,
            fee=0.0,
            timestamp_ms=self._now_ms(),
            reason=reason,
        )

    def _result(self, symbol: str, client_order_id: str, raw: dict[str, Any]) -> OrderResult:
        """What became of a placed order: filled quantity, average price, fee from the fills."""
        if raw.get("status") is None:  # Bybit acknowledges an order or a cancel by its ids only
            what = f"{self.name} order {client_order_id}"
            raw = self._call(what, lambda: self._lookup(symbol, client_order_id)) or raw
        for check in range(FILL_CHECKS):
            if raw.get("status") != "open" or raw.get("type") != "market":
                break
            self._sleep(self.retry.delay(check))
            what = f"{self.name} order {client_order_id}"
            raw = self._call(what, lambda: self._lookup(symbol, client_order_id)) or raw
        filled = float(raw.get("filled") or 0.0)
        status = {"closed": FILLED, "open": OPEN, "canceled": CANCELLED}.get(
            raw.get("status") or "", REJECTED
        )
        if filled > 0 and status in (CANCELLED, REJECTED):
            status = FILLED  # expired with a partial fill: what was filled is what counts
        order_id = str(raw["id"]) if raw.get("id") is not None else None
        fee = self._fee(symbol, order_id, filled, raw) if filled > 0 else 0.0
        stamp = raw.get("lastTradeTimestamp") or raw.get("timestamp") or self._now_ms()
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=order_id,
            status=status,
            filled=filled,
            average_price=float(raw["average"]) if raw.get("average") else None,
            fee=fee,
            timestamp_ms=int(stamp),
            reason=f"order {raw.get('status')}" if status == REJECTED else None,
        )

    def _fee(self, symbol: str, order_id: str | None, filled: float, raw: dict[str, Any]) -> float:
        """The commission the exchange charged, summed over the order's fills (userTrades);
        estimated from the market's taker rate only if the fills cannot be read."""
        what = f"{self.name} fills of order {order_id}"
        try:
            trades = self._call(
                what, lambda: self.exchange.fetch_my_trades(symbol, params={"orderId": order_id})
            )
        except BrokerError as err:
            rate = float(self.exchange.market(symbol).get("taker") or 0.0)
            estimate = filled * float(raw.get("average") or 0.0) * rate
            log.warning("%s: %s; fee estimated at the taker rate: %.6f", what, err, estimate)
            return estimate
        fee = 0.0
        for trade in trades:
            if str(trade.get("order")) != order_id or not trade.get("fee"):
                continue
            if trade["fee"].get("currency") not in (None, self.quote):
                log.warning("%s: fee in %s not counted", what, trade["fee"].get("currency"))
                continue
            fee += abs(float(trade["fee"].get("cost") or 0.0))
        return fee

    def cancel(self, order: OpenOrder) -> OrderResult:
        """Cancel an open order; one already gone reports what became of it instead."""
        self._markets()
        what = f"{self.name} cancel {order.symbol} order {order.client_order_id}"

        if order.conditional:
            return self.cancel_exit(order.symbol, order.client_order_id)

        def cancel_once() -> dict[str, Any] | None:
            try:
                return self.exchange.cancel_order(order.exchange_order_id, order.symbol)
            except ccxt.OrderNotFound:
                return self._lookup(order.symbol, order.client_order_id)

        raw = self._call(what, cancel_once)
        if raw is None:
            return OrderResult(
                client_order_id=order.client_order_id,
                exchange_order_id=order.exchange_order_id,
                status=REJECTED,
                filled=0.0,
                average_price=None,
                fee=0.0,
                timestamp_ms=self._now_ms(),
                reason="no such order on the exchange",
            )
        return self._result(order.symbol, order.client_order_id, raw)


def _bybit_equity(info: Mapping[str, Any], quote: str) -> float | None:
    """The quote coin's equity (wallet balance + unrealised P&L) in Bybit's wallet answer."""
    for account in (info.get("result") or {}).get("list") or []:
        for coin in account.get("coin") or []:
            if coin.get("coin") == quote and coin.get("equity") not in (None, ""):
                return float(coin["equity"])
    return None


__all__ = ["BUY", "BrokerAuthError", "BrokerConfigError", "CcxtBroker"]
