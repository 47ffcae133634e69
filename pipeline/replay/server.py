"""A replay of Binance USDⓈ-M's REST API, and of Bybit v5's (under `/v5/`, see `bybit.py`),
over a folder of recorded 1h candles, served over real HTTP so that the real ccxt client is
tested against it.

`ReplayExchange` routes each request to its endpoint (public market data in `market_data.py`,
funding history in `funding.py`, the signed account in `account.py`), counts requests and
draws faults; `ReplayServer` serves it on 127.0.0.1 from a background thread.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.data.csv_source import CandleFolder
from pipeline.replay import bybit
from pipeline.replay.account import ReplayAccount
from pipeline.replay.algo_orders import ReplayAlgoOrders
from pipeline.replay.clock import ReplayClock
from pipeline.replay.control import CONTROL_PREFIX, control
from pipeline.replay.errors import BinanceError
from pipeline.replay.faults import CARRIED_OUT, FAULT_ANSWERS, MALFORMED_BODY, FaultPlan
from pipeline.replay.funding import ReplayFunding
from pipeline.replay.market_data import ReplayMarket, ReplayMarketData
from pipeline.replay.signing import DEFAULT_API_KEY, DEFAULT_API_SECRET, RequestSigning

Route = tuple[bool, Callable[[dict], object]]


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
        funding_dir: str | Path | None = None,
    ):
        self.data = ReplayMarketData(CandleFolder(data_dir))
        self.clock = clock or ReplayClock()
        self.faults: FaultPlan | None = None
        self.requests: dict[str, int] = {}
        self.requests_by_method: dict[str, int] = {}
        self.faults_served = 0
        self._lock = threading.Lock()
        self._signing = RequestSigning(api_key, api_secret)
        self.market = ReplayMarket(self.data, self.clock)
        self.funding = ReplayFunding(self.data, self.clock, funding_dir)
        self.account = ReplayAccount(
            self.market.rules, self.market.price, self.clock.now_ms, balance
        )
        self.algo_orders = ReplayAlgoOrders(self.account, lambda m: self.data.series(m, "1h"))
        self._routes = self._route_table()
        self.bybit = bybit.BybitDialect(
            self.market,
            self.funding,
            self.account,
            self.algo_orders,
            self.clock,
            api_key,
            api_secret,
        )

    def __repr__(self) -> str:  # never the credentials
        return f"ReplayExchange({self.data.folder!r}, markets={self.data.symbols()})"

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

    def stats(self) -> dict:
        """Requests served (per path, and per method and path), faults served, the clock."""
        return {
            "requests": self.requests,
            "requests_by_method": self.requests_by_method,
            "faults_served": self.faults_served,
            "clock_ms": self.clock.now_ms(),
        }

    # -- routing -------------------------------------------------------------------------
    def _route_table(self) -> dict[tuple[str, str], Route]:
        """(method, path) → (signed?, handler of the request's parameters)."""
        market, acc, algo = self.market, self.account, self.algo_orders
        return {
            ("GET", "/fapi/v1/ping"): (False, market.ping),
            ("GET", "/fapi/v1/time"): (False, market.server_time),
            ("GET", "/fapi/v1/exchangeInfo"): (False, market.exchange_info),
            ("GET", "/fapi/v1/klines"): (False, market.klines),
            ("GET", "/fapi/v1/ticker/24hr"): (False, market.ticker_24hr),
            ("GET", "/fapi/v1/ticker/price"): (False, market.ticker_price),
            ("GET", "/fapi/v1/fundingRate"): (False, self.funding.funding_rate),
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
            ("POST", "/fapi/v1/algoOrder"): (True, algo.new_order),
            ("GET", "/fapi/v1/algoOrder"): (True, algo.query),
            ("DELETE", "/fapi/v1/algoOrder"): (True, algo.cancel),
            ("GET", "/fapi/v1/openAlgoOrders"): (True, algo.open_orders),
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
                params = self._signing.verify(query, body, api_key)
                self.algo_orders.watch()  # what triggered since: seen by every account request
            else:
                params = {k: v[-1] for k, v in parse_qs(query).items()}
            return 200, call(params)
        except BinanceError as err:
            return err.status, err.body()


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

        def _reset(self) -> None:
            """Close with a TCP reset (SO_LINGER 0): the client reads 'connection reset'."""
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _send_faulty(self, fault: str, answer: tuple[int, object]) -> None:
            """A request carried out whose answer never arrives whole (see faults.py)."""
            if fault == "lost":  # the caller never hears back
                time.sleep(exchange.fault_delay_s())
                self.close_connection = True
            elif fault == "reset_after":
                self._reset()
            elif fault == "truncated":  # the whole length announced, half the body sent
                payload = json.dumps(answer[1], separators=(",", ":")).encode()
                self.send_response(answer[0])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.close_connection = True
            elif fault == "malformed_json":  # a 200 that is not JSON, its length exact
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(MALFORMED_BODY)))
                self.end_headers()
                self.wfile.write(MALFORMED_BODY)

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self._body()  # read first, so a keep-alive connection stays in step
            if url.path.startswith(CONTROL_PREFIX):
                self._send(*control(exchange, method, url.path, body))
                return
            fault = exchange.next_fault(url.path, method)
            is_bybit = url.path.startswith(bybit.PREFIX)
            answers = bybit.FAULT_ANSWERS if is_bybit else FAULT_ANSWERS
            if fault in answers:
                self._send(*answers[fault])
                return
            if fault == "timeout":
                time.sleep(exchange.fault_delay_s())
                self.close_connection = True
                return
            if fault == "reset":  # refused before it is carried out
                self._reset()
                return
            if is_bybit:
                answer = exchange.bybit.handle(method, url.path, url.query, body, self.headers)
            else:
                answer = exchange.handle(
                    method, url.path, url.query, body, self.headers.get("X-MBX-APIKEY")
                )
            if fault in CARRIED_OUT:
                self._send_faulty(fault, answer)
                return
            self._send(*answer)

    return Handler


class ReplayServer:
    """The replay exchange on 127.0.0.1, serving from a background thread."""

    def __init__(self, exchange: ReplayExchange, port: int = 0, host: str = "127.0.0.1"):
        self.exchange = exchange
        self.httpd = ThreadingHTTPServer((host, port), _handler(exchange))
        self.httpd.daemon_threads = True
        # A request hanging in a 'timeout' or 'lost' fault must not hold up `stop`.
        self.httpd.block_on_close = False
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
