"""A replay of Binance USDⓈ-M's REST API over a folder of recorded 1h candles.

It serves the subset ccxt needs for candles (ping, time, exchangeInfo, klines), aggregates
higher timeframes on the fly, hides candles not yet closed at its replay clock, and can be
told to fail (429, 500, time-out, a lost answer) so that the real ccxt client is tested over
real HTTP. Its trading side (signed account, order, trade and settings endpoints) keeps one
account in `replay_account.py`, priced at the open of the 1h candle in progress.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from pipeline.data.aggregate import aggregate
from pipeline.data.csv_source import BASE_TIMEFRAME, CandleFolder
from pipeline.data.markets import market_id
from pipeline.data.replay_account import BinanceError, MarketRules, ReplayAccount
from pipeline.data.schema import validate_candles
from pipeline.data.timeframes import timeframe_ms

INTERVALS = ("1h", "2h", "4h", "6h", "8h", "12h", "1d")
DEFAULT_LIMIT, MAX_LIMIT = 500, 1500
# 'lost': the request is carried out, but its answer never arrives (the connection closes).
FAULT_KINDS = ("429", "500", "timeout", "lost")
H_MS = 3_600_000


class ReplayClock:
    """Real time, or a replayed time that starts at `start_ms` and runs `speed` times faster."""

    def __init__(self, start_ms: int | None = None, speed: float = 1.0):
        if speed <= 0:
            raise ValueError("--speed must be positive")
        self._lock = threading.Lock()
        self._start_ms, self._speed = start_ms, speed
        self._anchor = time.monotonic()

    def now_ms(self) -> int:
        with self._lock:
            if self._start_ms is None:
                return int(time.time() * 1000)
            return int(self._start_ms + (time.monotonic() - self._anchor) * self._speed * 1000)

    def set(self, start_ms: int | None, speed: float | None = None) -> None:
        with self._lock:
            self._start_ms = start_ms
            self._speed = speed if speed is not None else self._speed
            self._anchor = time.monotonic()


@dataclass
class FaultPlan:
    """Which requests fail, and how: the next `count` requests, or a `share` of them at random;
    only those to `path` and/or with `method` when given (e.g. POST /fapi/v1/order)."""

    kind: str = "500"
    count: int = 0
    share: float = 0.0
    delay_s: float = 15.0  # how long a 'timeout' or 'lost' request hangs before it is closed
    seed: int = 0
    path: str | None = None
    method: str | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("fault share must lie in [0, 1]")
        self.method = self.method.upper() if self.method else None
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(
        cls,
        spec: str,
        delay_s: float = 15.0,
        seed: int = 0,
        path: str | None = None,
        method: str | None = None,
    ) -> FaultPlan:
        """`KIND:N` fails the next N requests; `KIND:0.25` fails a quarter of them at random."""
        kind, _, amount = spec.partition(":")
        if not amount:
            raise ValueError(f"fault spec {spec!r} must look like 500:3 or 429:0.2")
        where = {"delay_s": delay_s, "seed": seed, "path": path, "method": method}
        if "." in amount:
            return cls(kind=kind, share=float(amount), **where)
        return cls(kind=kind, count=int(amount), **where)

    def matches(self, method: str | None, path: str | None) -> bool:
        return self.path in (None, path) and self.method in (None, method)

    def draw(self, method: str | None = None, path: str | None = None) -> str | None:
        if not self.matches(method, path):
            return None
        if self.count > 0:
            self.count -= 1
            return self.kind
        if self.share > 0 and self._rng.random() < self.share:
            return self.kind
        return None


class ReplayMarketData:
    """Candles of every market in the folder, per interval, loaded once and validated."""

    def __init__(self, folder: CandleFolder):
        self.folder = folder
        self.base: dict[str, pd.DataFrame] = {}
        for symbol in folder.symbols():
            frame = folder.read(symbol, BASE_TIMEFRAME)
            self.base[market_id(symbol)] = validate_candles(frame, symbol, BASE_TIMEFRAME)
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._hours: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def symbols(self) -> list[str]:
        return sorted(self.base)

    def price(self, market: str, now_ms: int) -> float | None:
        """The open of the 1h candle in progress at `now_ms`; after the data (or in a gap) the
        last close before it; None before the market's first candle."""
        with self._lock:
            if market not in self._hours:
                frame = self.base[market]
                self._hours[market] = (
                    frame["timestamp"].to_numpy(dtype="int64"),
                    frame["open"].to_numpy(dtype="float64"),
                    frame["close"].to_numpy(dtype="float64"),
                )
            opens, open_prices, closes = self._hours[market]
        i = int(np.searchsorted(opens, now_ms, side="right")) - 1
        if i < 0:
            return None
        return float(open_prices[i] if now_ms < opens[i] + H_MS else closes[i])

    def series(self, market: str, interval: str) -> np.ndarray:
        """(n, 6) float array [open_time, o, h, l, c, v] of complete candles, ascending."""
        key = (market, interval)
        with self._lock:
            if key not in self._cache:
                frame = aggregate(self.base[market], BASE_TIMEFRAME, interval)
                self._cache[key] = frame.to_numpy(dtype="float64")
            return self._cache[key]


def _price_decimals(values: np.ndarray) -> int:
    sample = values[: min(len(values), 2000)]
    for decimals in range(0, 9):
        if np.allclose(sample * 10**decimals, np.round(sample * 10**decimals), atol=1e-6):
            return decimals
    return 8


DEFAULT_API_KEY, DEFAULT_API_SECRET = "replay-key", "replay-secret"


def _split_signature(part: str) -> tuple[str, str | None]:
    """A query or body string without its `signature=` item, and that signature."""
    kept, signature = [], None
    for item in part.split("&"):
        if item.startswith("signature="):
            signature = item[len("signature=") :]
        elif item:
            kept.append(item)
    return "&".join(kept), signature


class ReplayExchange:
    """The state behind the HTTP handler: data, clock, account, faults, request counters."""

    def __init__(
        self,
        data_dir: str | Path,
        clock: ReplayClock | None = None,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        balance: float = 10_000.0,
    ):
        self.data = ReplayMarketData(CandleFolder(data_dir))
        self.clock = clock or ReplayClock()
        self.faults: FaultPlan | None = None
        self.requests: dict[str, int] = {}
        self.requests_by_method: dict[str, int] = {}
        self.faults_served = 0
        self._lock = threading.Lock()
        self._api_key, self._api_secret = api_key, api_secret.encode()
        self.price_decimals = {
            market: _price_decimals(frame["close"].to_numpy())
            for market, frame in self.data.base.items()
        }
        self.rules = {
            market: MarketRules(tick=Decimal(1).scaleb(-decimals))
            for market, decimals in self.price_decimals.items()
        }
        self.account = ReplayAccount(self.rules, self.price, self.clock.now_ms, balance)
        self._routes = self._route_table()

    def __repr__(self) -> str:  # never the credentials
        return f"ReplayExchange({self.data.folder!r}, markets={self.data.symbols()})"

    def price(self, market: str) -> float | None:
        """The price a market order fills at now (see `ReplayMarketData.price`)."""
        return self.data.price(market, self.clock.now_ms())

    # -- control -------------------------------------------------------------------------
    def set_faults(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self.faults = plan

    def next_fault(self, path: str, method: str = "GET") -> str | None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            key = f"{method} {path}"
            self.requests_by_method[key] = self.requests_by_method.get(key, 0) + 1
            fault = self.faults.draw(method, path) if self.faults else None
            if fault:
                self.faults_served += 1
            return fault

    def fault_delay_s(self) -> float:
        with self._lock:
            return self.faults.delay_s if self.faults else 15.0

    # -- routing -------------------------------------------------------------------------
    def _route_table(self) -> dict[tuple[str, str], tuple[bool, Callable[[dict], object]]]:
        """(method, path) → (signed?, handler of the request's parameters)."""
        acc = self.account
        return {
            ("GET", "/fapi/v1/ping"): (False, lambda q: {}),
            ("GET", "/fapi/v1/time"): (False, lambda q: {"serverTime": self.clock.now_ms()}),
            ("GET", "/fapi/v1/exchangeInfo"): (False, lambda q: self.exchange_info()),
            ("GET", "/fapi/v1/klines"): (False, self._klines_or_raise),
            ("GET", "/fapi/v1/ticker/24hr"): (False, self.ticker_24hr),
            ("GET", "/fapi/v1/ticker/price"): (False, self.ticker_price),
            ("GET", "/fapi/v3/account"): (True, lambda q: acc.account(3)),
            ("GET", "/fapi/v2/account"): (True, lambda q: acc.account(2)),
            ("GET", "/fapi/v3/positionRisk"): (True, lambda q: acc.position_risk(q, 3)),
            ("GET", "/fapi/v2/positionRisk"): (True, lambda q: acc.position_risk(q, 2)),
            ("GET", "/fapi/v1/leverageBracket"): (True, acc.leverage_brackets),
            ("POST", "/fapi/v1/order"): (True, acc.new_order),
            ("GET", "/fapi/v1/order"): (True, acc.query_order),
            ("DELETE", "/fapi/v1/order"): (True, acc.cancel_order),
            ("GET", "/fapi/v1/openOrders"): (True, acc.open_orders),
            ("GET", "/fapi/v1/userTrades"): (True, acc.user_trades),
            ("POST", "/fapi/v1/leverage"): (True, acc.set_leverage),
            ("POST", "/fapi/v1/marginType"): (True, acc.set_margin_type),
        }

    def handle(
        self, method: str, path: str, query: str, body: str, api_key: str | None
    ) -> tuple[int, object]:
        """One API request → (HTTP status, JSON body), Binance's error shape on refusal."""
        route = self._routes.get((method, path))
        if route is None:
            return 404, {"code": -5000, "msg": f"Path {method} {path} is not served here."}
        signed, call = route
        try:
            if signed:
                params = self._authenticate(query, body, api_key)
            else:
                params = {k: v[-1] for k, v in parse_qs(query).items()}
            return 200, call(params)
        except BinanceError as err:
            return err.status, err.body()

    def _authenticate(self, query: str, body: str, api_key: str | None) -> dict[str, str]:
        """Binance's HMAC-SHA256 signing: the key in X-MBX-APIKEY, `signature` over
        query string + body; the answers never repeat what was sent."""
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(api_key.encode(), self._api_key.encode()):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query_part, query_sig = _split_signature(query)
        body_part, body_sig = _split_signature(body)
        signature = query_sig or body_sig
        if not signature:
            raise BinanceError(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        expected = hmac.new(
            self._api_secret, (query_part + body_part).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        params = {k: v[-1] for k, v in parse_qs(query_part).items()}
        params.update({k: v[-1] for k, v in parse_qs(body_part).items()})
        if "timestamp" not in params:
            # Not checked against recvWindow: the replay clock is not the caller's clock.
            raise BinanceError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        return params

    # -- API -----------------------------------------------------------------------------
    def exchange_info(self) -> dict:
        symbols = []
        for market in self.data.symbols():
            base = self.data.base[market]
            rules = self.rules[market]
            decimals = self.price_decimals[market]
            tick = str(rules.tick)
            first = int(base["timestamp"].iloc[0])
            symbols.append(
                {
                    "symbol": market,
                    "pair": market,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": first,
                    "status": "TRADING",
                    "baseAsset": market[:-4],
                    "quoteAsset": market[-4:],
                    "marginAsset": market[-4:],
                    "pricePrecision": decimals,
                    "quantityPrecision": 3,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "tickSize": tick,
                            "minPrice": tick,
                            "maxPrice": "10000000",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "stepSize": str(rules.step),
                            "minQty": str(rules.min_qty),
                            "maxQty": str(rules.max_qty),
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "stepSize": str(rules.step),
                            "minQty": str(rules.min_qty),
                            "maxQty": str(rules.max_qty),
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": f"{rules.min_notional:g}"},
                    ],
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True}],
            "symbols": symbols,
        }

    def klines(self, query: dict[str, str]) -> tuple[int, object]:
        market = query.get("symbol", "")
        interval = query.get("interval", "")
        if market not in self.data.base:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if interval not in INTERVALS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        step = timeframe_ms(interval)
        rows = self.data.series(market, interval)
        opens = rows[:, 0].astype("int64")
        # Only candles closed by the replay clock exist yet.
        visible = int(np.searchsorted(opens, self.clock.now_ms() - step, side="right"))
        hi = visible if end is None else min(visible, int(np.searchsorted(opens, end, "right")))
        if start is not None:
            lo = int(np.searchsorted(opens, start, side="left"))
            chosen = rows[lo : min(hi, lo + limit)]
        else:
            chosen = rows[max(0, hi - limit) : hi]
        return 200, [
            [
                int(r[0]),
                repr(r[1]),
                repr(r[2]),
                repr(r[3]),
                repr(r[4]),
                repr(r[5]),
                int(r[0]) + step - 1,
                "0",
                0,
                "0",
                "0",
                "0",
            ]
            for r in chosen.tolist()
        ]

    def _klines_or_raise(self, query: dict[str, str]) -> object:
        status, body = self.klines(query)
        if status != 200:
            assert isinstance(body, dict)
            raise BinanceError(body["code"], body["msg"], status)
        return body

    def _ticker_markets(self, query: dict[str, str]) -> list[str]:
        market = query.get("symbol")
        if market is None:
            return self.data.symbols()
        if market not in self.data.base:
            raise BinanceError(-1121, "Invalid symbol.")
        return [market]

    def ticker_price(self, query: dict[str, str]) -> object:
        """GET /fapi/v1/ticker/price: the fill price now, per market."""
        now = self.clock.now_ms()
        rows = [
            {"symbol": m, "price": repr(p), "time": now}
            for m in self._ticker_markets(query)
            if (p := self.price(m)) is not None
        ]
        return rows[0] if "symbol" in query and rows else rows

    def ticker_24hr(self, query: dict[str, str]) -> object:
        """GET /fapi/v1/ticker/24hr (ccxt's fetch_ticker): last = the fill price now; the rest
        from the hours closed in the last 24h."""
        now = self.clock.now_ms()
        rows = []
        for market in self._ticker_markets(query):
            last = self.price(market)
            if last is None:
                continue
            hours = self.data.series(market, "1h")
            lo, hi = np.searchsorted(hours[:, 0], [now - 24 * H_MS, now - H_MS], side="right")
            day = hours[lo:hi]
            first = float(day[0, 1]) if len(day) else last
            high = max([last, *day[:, 2].tolist()])
            low = min([last, *day[:, 3].tolist()])
            volume = float(day[:, 5].sum())
            quote_volume = float((day[:, 4] * day[:, 5]).sum())
            rows.append(
                {
                    "symbol": market,
                    "priceChange": repr(last - first),
                    "priceChangePercent": f"{(last / first - 1) * 100:.3f}",
                    "weightedAvgPrice": repr(quote_volume / volume if volume else last),
                    "lastPrice": repr(last),
                    "lastQty": "0",
                    "openPrice": repr(first),
                    "highPrice": repr(high),
                    "lowPrice": repr(low),
                    "volume": repr(volume),
                    "quoteVolume": repr(quote_volume),
                    "openTime": now - 24 * H_MS,
                    "closeTime": now,
                    "firstId": 0,
                    "lastId": 0,
                    "count": len(day),
                }
            )
        return rows[0] if "symbol" in query and rows else rows


def _handler(exchange: ReplayExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "signals-replay/1"
        protocol_version = "HTTP/1.1"
        # Small JSON answers: without this, Nagle + delayed ACK add ~40 ms to each request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:  # quiet by default
            pass

        def _send(self, status: int, body: object) -> None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode() if length else ""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self._body()  # read first, so a keep-alive connection stays in step
            if url.path.startswith("/_replay/"):
                self._control(method, url.path, body)
                return
            fault = exchange.next_fault(url.path, method)
            if fault == "429":
                self._send(429, {"code": -1003, "msg": "Too many requests; replay fault."})
                return
            if fault == "500":
                self._send(500, {"code": -1000, "msg": "Internal error; replay fault."})
                return
            if fault == "timeout":
                time.sleep(exchange.fault_delay_s())
                self.close_connection = True
                return
            answer = exchange.handle(
                method, url.path, url.query, body, self.headers.get("X-MBX-APIKEY")
            )
            if fault == "lost":  # carried out, but the caller never hears back
                time.sleep(exchange.fault_delay_s())
                self.close_connection = True
                return
            self._send(*answer)

        def _control(self, method: str, path: str, body: str) -> None:
            """GET `/_replay/stats`, `/_replay/account`; POST `/_replay/faults`
            {"spec": "lost:1", "delay_s", "seed", "path", "method"} or {} to clear,
            `/_replay/clock` {"ms", "speed"}, `/_replay/account` {"balance", "reset"}."""
            try:
                if method == "GET" and path == "/_replay/stats":
                    self._send(
                        200,
                        {
                            "requests": exchange.requests,
                            "requests_by_method": exchange.requests_by_method,
                            "faults_served": exchange.faults_served,
                            "clock_ms": exchange.clock.now_ms(),
                        },
                    )
                    return
                if method == "GET" and path == "/_replay/account":
                    self._send(200, exchange.account.snapshot())
                    return
                if method != "POST":
                    self._send(404, {"msg": "unknown control path"})
                    return
                self._control_post(path, json.loads(body or "{}"))
            except (ValueError, TypeError) as err:
                self._send(400, {"msg": str(err)})

        def _control_post(self, path: str, body: dict) -> None:
            if path == "/_replay/faults":
                spec = body.get("spec")
                plan = None
                if spec:
                    plan = FaultPlan.parse(
                        spec,
                        float(body.get("delay_s", 15.0)),
                        int(body.get("seed", 0)),
                        path=body.get("path"),
                        method=body.get("method"),
                    )
                exchange.set_faults(plan)
            elif path == "/_replay/clock":
                exchange.clock.set(body.get("ms"), body.get("speed"))
            elif path == "/_replay/account":
                balance = body.get("balance")
                if body.get("reset"):
                    exchange.account.reset(
                        float(balance) if balance is not None else exchange.account.wallet
                    )
                elif balance is not None:
                    exchange.account.set_balance(float(balance))
                self._send(200, exchange.account.snapshot())
                return
            else:
                self._send(404, {"msg": "unknown control path"})
                return
            self._send(200, {"ok": True})

    return Handler


class ReplayServer:
    """The replay exchange on 127.0.0.1, serving from a background thread."""

    def __init__(self, exchange: ReplayExchange, port: int = 0, host: str = "127.0.0.1"):
        self.exchange = exchange
        self.httpd = ThreadingHTTPServer((host, port), _handler(exchange))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="replay-exchange", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
