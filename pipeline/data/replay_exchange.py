"""A replay of Binance USDⓈ-M's public REST API over a folder of recorded 1h candles.

It serves the subset ccxt needs for candles (ping, time, exchangeInfo, klines), aggregates
higher timeframes on the fly, hides candles not yet closed at its replay clock, and can be
told to fail (429, 500, time-out) so that the real ccxt client is tested over real HTTP.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from pipeline.data.aggregate import aggregate
from pipeline.data.csv_source import BASE_TIMEFRAME, CandleFolder
from pipeline.data.markets import market_id
from pipeline.data.schema import validate_candles
from pipeline.data.timeframes import timeframe_ms

INTERVALS = ("1h", "2h", "4h", "6h", "8h", "12h", "1d")
DEFAULT_LIMIT, MAX_LIMIT = 500, 1500
FAULT_KINDS = ("429", "500", "timeout")


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
    """Which requests fail, and how: the next `count` requests, or a `share` of them at random."""

    kind: str = "500"
    count: int = 0
    share: float = 0.0
    delay_s: float = 15.0  # how long a 'timeout' request hangs before the connection closes
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("fault share must lie in [0, 1]")
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str, delay_s: float = 15.0, seed: int = 0) -> FaultPlan:
        """`KIND:N` fails the next N requests; `KIND:0.25` fails a quarter of them at random."""
        kind, _, amount = spec.partition(":")
        if not amount:
            raise ValueError(f"fault spec {spec!r} must look like 500:3 or 429:0.2")
        if "." in amount:
            return cls(kind=kind, share=float(amount), delay_s=delay_s, seed=seed)
        return cls(kind=kind, count=int(amount), delay_s=delay_s, seed=seed)

    def draw(self) -> str | None:
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
        self._lock = threading.Lock()

    def symbols(self) -> list[str]:
        return sorted(self.base)

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


class ReplayExchange:
    """The state behind the HTTP handler: data, clock, faults, request counters."""

    def __init__(self, data_dir: str | Path, clock: ReplayClock | None = None):
        self.data = ReplayMarketData(CandleFolder(data_dir))
        self.clock = clock or ReplayClock()
        self.faults: FaultPlan | None = None
        self.requests: dict[str, int] = {}
        self.faults_served = 0
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------
    def set_faults(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self.faults = plan

    def next_fault(self, path: str) -> str | None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            fault = self.faults.draw() if self.faults else None
            if fault:
                self.faults_served += 1
            return fault

    # -- API -----------------------------------------------------------------------------
    def exchange_info(self) -> dict:
        symbols = []
        for market in self.data.symbols():
            base = self.data.base[market]
            decimals = _price_decimals(base["close"].to_numpy())
            tick = f"{10.0**-decimals:.{decimals}f}" if decimals else "1"
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
                            "stepSize": "0.001",
                            "minQty": "0.001",
                            "maxQty": "1000000",
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "stepSize": "0.001",
                            "minQty": "0.001",
                            "maxQty": "1000000",
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": "5"},
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


def _handler(exchange: ReplayExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "signals-replay/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet by default
            pass

        def _send(self, status: int, body: object) -> None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path.startswith("/_replay/"):
                self._control_get(url.path)
                return
            fault = exchange.next_fault(url.path)
            if fault == "429":
                self._send(429, {"code": -1003, "msg": "Too many requests; replay fault."})
                return
            if fault == "500":
                self._send(500, {"code": -1000, "msg": "Internal error; replay fault."})
                return
            if fault == "timeout":
                time.sleep(exchange.faults.delay_s if exchange.faults else 15.0)
                self.close_connection = True
                return
            if url.path == "/fapi/v1/ping":
                self._send(200, {})
            elif url.path == "/fapi/v1/time":
                self._send(200, {"serverTime": exchange.clock.now_ms()})
            elif url.path == "/fapi/v1/exchangeInfo":
                self._send(200, exchange.exchange_info())
            elif url.path == "/fapi/v1/klines":
                self._send(*exchange.klines(query))
            else:
                self._send(404, {"code": -5000, "msg": f"Path {url.path} is not served here."})

        def _control_get(self, path: str) -> None:
            if path == "/_replay/stats":
                self._send(
                    200,
                    {
                        "requests": exchange.requests,
                        "faults_served": exchange.faults_served,
                        "clock_ms": exchange.clock.now_ms(),
                    },
                )
            else:
                self._send(404, {"msg": "unknown control path"})

        def do_POST(self) -> None:
            """Control: `/_replay/faults` {"spec": "500:3"} or {} to clear; `/_replay/clock`."""
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            try:
                if url.path == "/_replay/faults":
                    spec = body.get("spec")
                    exchange.set_faults(
                        FaultPlan.parse(spec, float(body.get("delay_s", 15.0))) if spec else None
                    )
                elif url.path == "/_replay/clock":
                    exchange.clock.set(body.get("ms"), body.get("speed"))
                else:
                    self._send(404, {"msg": "unknown control path"})
                    return
            except (ValueError, TypeError) as err:
                self._send(400, {"msg": str(err)})
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
