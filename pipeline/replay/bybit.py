"""Bybit v5 spoken by the replay exchange, beside Binance: the same candles, clock, funding and
account, under `/v5/` (Binance lives under `/fapi/`, so one server speaks both at once).

`BybitDialect` routes each (method, path) to its handler (`bybit_market.py` for the public
endpoints, `bybit_account.py` for the signed ones), checks Bybit's request signature, and wraps
every answer in Bybit's envelope `{retCode, retMsg, result, retExtInfo, time}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

from pipeline.replay.account import ReplayAccount
from pipeline.replay.algo_orders import ReplayAlgoOrders
from pipeline.replay.bybit_account import BybitAccount
from pipeline.replay.bybit_errors import BybitError, params_error
from pipeline.replay.bybit_market import BybitMarket
from pipeline.replay.clock import ReplayClock
from pipeline.replay.funding import ReplayFunding
from pipeline.replay.market_data import ReplayMarket

PREFIX = "/v5/"
Route = tuple[bool, Callable[[dict[str, str]], dict]]

# The fault kinds that answer at all, as Bybit words them: its rate limit (retCode 10006,
# ccxt RateLimitExceeded) and its "system error" (10016: the outcome is unknown, retried).
FAULT_ANSWERS: dict[str, tuple[int, dict]] = {
    "429": (429, {"retCode": 10006, "retMsg": "Too many visits! replay fault.", "result": {}}),
    "500": (500, {"retCode": 10016, "retMsg": "System error; replay fault.", "result": {}}),
}


def _text(value: object) -> str:
    """A JSON body value as the query-string text the account engine reads."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class BybitSigning:
    """Bybit v5's HMAC-SHA256 signature over timestamp + key + recvWindow + (query or body),
    sent in the X-BAPI-* headers; the one key pair the replay accepts, never shown."""

    def __init__(self, api_key: str, api_secret: str):
        self._api_key, self._api_secret = api_key, api_secret.encode()

    def __repr__(self) -> str:
        return "BybitSigning(***)"

    def verify(
        self, method: str, query: str, body: str, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """The request's parameters once its key and signature check out."""
        key = headers.get("X-BAPI-API-KEY") or ""
        if not key or not hmac.compare_digest(key.encode(), self._api_key.encode()):
            raise BybitError(10003, "API key is invalid.", 401)
        stamp = headers.get("X-BAPI-TIMESTAMP") or ""
        signature = headers.get("X-BAPI-SIGN") or ""
        if not stamp or not signature:
            raise BybitError(10004, "error sign! the X-BAPI-TIMESTAMP or X-BAPI-SIGN is missing")
        # Not checked against recvWindow: the replay clock is not the caller's clock.
        signed = body if method == "POST" else query
        payload = stamp + key + (headers.get("X-BAPI-RECV-WINDOW") or "") + signed
        expected = hmac.new(self._api_secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise BybitError(10004, "error sign! Please check your signature generation.", 401)
        if method != "POST":
            return {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            fields = json.loads(body or "{}")
        except ValueError:
            raise params_error("the body is not JSON") from None
        if not isinstance(fields, dict):
            raise params_error("the body is not a JSON object")
        return {k: _text(v) for k, v in fields.items()}


class BybitDialect:
    """The `/v5/` endpoints of the replay exchange, over its one market, funding and account."""

    def __init__(
        self,
        market: ReplayMarket,
        funding: ReplayFunding,
        account: ReplayAccount,
        algo_orders: ReplayAlgoOrders,
        clock: ReplayClock,
        api_key: str,
        api_secret: str,
    ):
        self.clock = clock
        self.algo_orders = algo_orders
        self.market = BybitMarket(market, funding)
        self.account = BybitAccount(account, algo_orders, clock.now_ms)
        self._signing = BybitSigning(api_key, api_secret)
        self._routes = self._route_table()

    def _route_table(self) -> dict[tuple[str, str], Route]:
        m, a = self.market, self.account
        return {
            ("GET", "/v5/market/time"): (False, m.time),
            ("GET", "/v5/market/instruments-info"): (False, m.instruments_info),
            ("GET", "/v5/market/kline"): (False, m.kline),
            ("GET", "/v5/market/tickers"): (False, m.tickers),
            ("GET", "/v5/market/funding/history"): (False, m.funding_history),
            ("GET", "/v5/user/query-api"): (True, a.api_key_info),
            ("GET", "/v5/account/info"): (True, a.account_info),
            ("GET", "/v5/account/wallet-balance"): (True, a.wallet_balance),
            ("GET", "/v5/position/list"): (True, a.positions),
            ("GET", "/v5/order/realtime"): (True, a.realtime_orders),
            ("GET", "/v5/order/history"): (True, a.order_history),
            ("GET", "/v5/execution/list"): (True, a.executions),
            ("POST", "/v5/order/create"): (True, a.create_order),
            ("POST", "/v5/order/cancel"): (True, a.cancel_order),
            ("POST", "/v5/position/set-leverage"): (True, a.set_leverage),
            ("POST", "/v5/account/set-margin-mode"): (True, a.set_margin_mode),
        }

    def handle(
        self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, object]:
        """One v5 request → (HTTP status, JSON body): Bybit's envelope, refusals in its words."""
        route = self._routes.get((method, path))
        if route is None:
            return 404, BybitError(10001, f"{method} {path} is not served here").body(
                self.clock.now_ms()
            )
        signed, call = route
        try:
            if signed:
                params = self._signing.verify(method, query, body, headers)
                self.algo_orders.watch()  # what triggered since: seen by every account request
            else:
                params = {k: v[-1] for k, v in parse_qs(query).items()}
            result = call(params)
        except BybitError as err:
            return err.status, err.body(self.clock.now_ms())
        ok = "Request accepted" if path == "/v5/account/set-margin-mode" else "OK"
        return 200, {
            "retCode": 0,
            "retMsg": ok,
            "result": result,
            "retExtInfo": {},
            "time": self.clock.now_ms(),
        }
