"""`CcxtCandleSource` against Bybit v5's recorded response shapes, offline.

These tests pin ccxt's bybit client against Bybit's own recorded instruments (the replay
exchange's v5 dialect is tested over HTTP in tests/replay/test_bybit.py and
tests/data/test_bybit_replay_ingest.py): its HTTP layer, `Exchange.fetch`, is replaced by
`BybitRecorder`: it
answers each v5 endpoint with a recorded (instruments-info) or synthetic (kline, time) body in
Bybit's shape, runs ccxt's own `handle_errors` on it so bybit's retCode mapping is exercised for
real, and records the query parameters ccxt sent.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import pytest

from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.exchange.client import make_exchange
from pipeline.exchange.markets import UnknownMarketError, market_id, symbol_from_id
from pipeline.exchange.retry import ExchangeSourceError, RetryPolicy, with_retries

FIXTURES = Path(__file__).parent / "fixtures" / "bybit"
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, open of the first synthetic candle
N_CANDLES = 2500  # the last one is still open at the exchange clock the tests set
BYBIT_MAX_LIMIT = 1000  # /v5/market/kline: limit in [1, 1000]
SYMBOL = "BTC/USDT:USDT"
NO_WAIT = RetryPolicy(backoff_s=0.0)

KLINE = "/v5/market/kline"
INSTRUMENTS = "/v5/market/instruments-info"
TIME = "/v5/market/time"


def bybit_error(ret_code: int, ret_msg: str, now_ms: int) -> dict[str, Any]:
    """An error body as Bybit v5 sends it: HTTP 200 with a non-zero retCode."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": {}, "retExtInfo": {}, "time": now_ms}


def synthetic_klines(start_ms: int, count: int, step_ms: int = HOUR) -> list[list[str]]:
    """Hourly rows in Bybit's kline shape (all strings), oldest first; values vary per row."""
    rows = []
    for i in range(count):
        open_ = 40_000 + (i * 7919) % 3001 / 10
        close = 40_000 + ((i + 1) * 7919) % 3001 / 10
        volume = 1 + (i * 31) % 997 / 1000
        rows.append(
            [
                str(start_ms + i * step_ms),
                f"{open_:.1f}",
                f"{max(open_, close) + 12.5:.1f}",
                f"{min(open_, close) - 8.3:.1f}",
                f"{close:.1f}",
                f"{volume:.3f}",
                f"{volume * open_:.4f}",  # turnover: ccxt ignores it for linear markets
            ]
        )
    return rows


def as_candles(rows: list[list[str]]) -> list[list[float]]:
    """What the source should return for Bybit rows: [ts, o, h, l, c, base volume]."""
    return [[int(r[0]), *(float(v) for v in r[1:6])] for r in rows]


@dataclass
class Request:
    path: str
    params: dict[str, str]


@dataclass
class BybitRecorder:
    """Stands in for `Exchange.fetch`: routes by URL path, records queries, can fail on cue."""

    exchange: ccxt.Exchange
    now_ms: int
    klines: dict[str, list[list[str]]]
    instruments: dict[str, Any] = field(
        default_factory=lambda: json.loads((FIXTURES / "instruments_info_linear.json").read_text())
    )
    requests: list[Request] = field(default_factory=list)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    kline_pages: list[list[list[str]]] = field(default_factory=list)

    def fail_next(self, path: str, body: dict[str, Any], times: int = 1) -> None:
        self.failures.setdefault(path, []).extend([body] * times)

    def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, method) == ("https", "api.bybit.com", "GET"), url
        query = parse_qs(parts.query, keep_blank_values=True)
        params = {key: values[-1] for key, values in query.items()}
        self.requests.append(Request(parts.path, params))
        queued = self.failures.get(parts.path)
        response = queued.pop(0) if queued else self._answer(parts.path, params)
        # What ccxt's own fetch does with a 200 answer: bybit maps a non-zero retCode to an error.
        self.exchange.handle_errors(
            200, "OK", url, method, {}, json.dumps(response), response, headers, body
        )
        return response

    def of(self, path: str) -> list[dict[str, str]]:
        return [r.params for r in self.requests if r.path == path]

    def _answer(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if path == TIME:
            return {
                "retCode": 0,
                "retMsg": "OK",
                "result": {
                    "timeSecond": str(self.now_ms // 1000),
                    "timeNano": str(self.now_ms * 1_000_000 + 421_337),
                },
                "retExtInfo": {},
                "time": self.now_ms,
            }
        if path == INSTRUMENTS:
            assert params.get("category") == "linear", params
            if params.get("status") == "PreLaunch":  # ccxt also asks for pre-listed contracts
                return {
                    "retCode": 0,
                    "retMsg": "OK",
                    "result": {"category": "linear", "list": [], "nextPageCursor": ""},
                    "retExtInfo": {},
                    "time": self.now_ms,
                }
            return self.instruments
        if path == KLINE:
            return self._kline(params)
        raise AssertionError(f"unexpected Bybit endpoint {path} {params}")

    def _kline(self, params: dict[str, str]) -> dict[str, Any]:
        """Rows opened in [start, end] (end defaults to now), newest first, at most `limit`."""
        assert params["category"] == "linear" and params["interval"] == "60", params
        start = int(params.get("start", 0))
        end = int(params.get("end", self.now_ms))
        limit = min(int(params.get("limit", 200)), BYBIT_MAX_LIMIT)
        rows = [
            r
            for r in self.klines[params["symbol"]]
            if start <= int(r[0]) <= end and int(r[0]) <= self.now_ms
        ]
        page = sorted(rows, key=lambda r: int(r[0]), reverse=True)[:limit]
        self.kline_pages.append(page)
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"symbol": params["symbol"], "category": "linear", "list": page},
            "retExtInfo": {},
            "time": self.now_ms,
        }


def offline_bybit(now_ms: int, klines: list[list[str]] | None = None) -> BybitRecorder:
    """Our `make_exchange('bybit')` with every HTTP request answered by a `BybitRecorder`.

    load_markets also calls fetch_currencies, but bybit's asks a private endpoint only with API
    keys and returns {} without them, so nothing needs answering there. The rate limiter is
    switched off only because it sleeps for real between requests; it is ccxt's, not ours.
    """
    exchange = make_exchange("bybit")
    exchange.enableRateLimit = False
    recorder = BybitRecorder(exchange, now_ms, {"BTCUSDT": klines or []})
    exchange.fetch = recorder.fetch
    return recorder


@pytest.fixture()
def recorder() -> BybitRecorder:
    """2500 hourly BTCUSDT candles; the clock is 30 min into the last, still open, one."""
    return offline_bybit(T0 + (N_CANDLES - 1) * HOUR + HOUR // 2, synthetic_klines(T0, N_CANDLES))


# --- symbol mapping ---------------------------------------------------------------------------


def test_unified_symbols_map_to_bybit_ids_as_market_id_says(recorder: BybitRecorder) -> None:
    """Partition keys come from `market_id`; they must be the ids Bybit itself uses."""
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    source.check_market(SYMBOL)
    exchange = recorder.exchange
    assert exchange.market(SYMBOL)["id"] == "BTCUSDT" == market_id(SYMBOL)
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT", "1000PEPE/USDT:USDT"):
        market = exchange.market(symbol)
        assert market["id"] == market_id(symbol)
        assert symbol_from_id(market["id"]) == symbol
        assert (market["swap"], market["linear"], market["settle"]) == (True, True, "USDT")
        source.check_market(symbol)


def test_loading_markets_asks_only_public_linear_instruments(recorder: BybitRecorder) -> None:
    """make_exchange's options keep load_markets to linear contracts, with no keys needed."""
    CcxtCandleSource(recorder.exchange, retry=NO_WAIT).check_market(SYMBOL)
    assert {r.path for r in recorder.requests} == {INSTRUMENTS}
    assert all(p["category"] == "linear" for p in recorder.of(INSTRUMENTS))
    assert {p.get("status") for p in recorder.of(INSTRUMENTS)} == {None, "PreLaunch"}


def test_markets_load_once_per_source(recorder: BybitRecorder) -> None:
    """check_market runs before every fetch; instruments-info must not be asked each time."""
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    source.check_market(SYMBOL)
    asked = len(recorder.requests)
    source.check_market("ETH/USDT:USDT")
    source.fetch(SYMBOL, "1h", recorder.now_ms - 3 * HOUR)
    assert len(recorder.of(INSTRUMENTS)) == asked


@pytest.mark.parametrize("symbol", ["DOGE/USDT:USDT", "BTC/USDT:USDT-250627", "BTC/USDT"])
def test_check_market_rejects_what_is_not_a_listed_perpetual(
    recorder: BybitRecorder, symbol: str
) -> None:
    """Unlisted, dated futures and spot symbols are refused before any candle is asked for."""
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    with pytest.raises(UnknownMarketError, match=f"{symbol} on bybit"):
        source.check_market(symbol)
    with pytest.raises(UnknownMarketError):
        source.fetch(symbol, "1h", T0)
    assert recorder.of(KLINE) == []


def test_dated_future_is_listed_but_not_a_perpetual(recorder: BybitRecorder) -> None:
    """The recorded BTCUSDT-27JUN25 is parsed as a future, so the rejection above is for cause."""
    CcxtCandleSource(recorder.exchange, retry=NO_WAIT).check_market(SYMBOL)
    future = recorder.exchange.market("BTC/USDT:USDT-250627")
    assert future["id"] == "BTCUSDT-27JUN25"
    assert (future["future"], future["swap"], future["expiry"]) == (True, False, 1751011200000)


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_limit", [None, 333], ids=["default-limit", "limit-333"])
@pytest.mark.parametrize(
    "clock_offset", [0, HOUR // 2, HOUR - 1], ids=["on-open", "mid-candle", "1ms-before-close"]
)
def test_fetch_pages_newest_first_klines_into_closed_ascending_candles(
    page_limit: int | None, clock_offset: int
) -> None:
    """Every closed candle exactly once, ascending, as recorded; the open one never."""
    rows = synthetic_klines(T0, N_CANDLES)
    open_candle = int(rows[-1][0])
    recorder = offline_bybit(open_candle + clock_offset, rows)
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT, page_limit=page_limit)
    progress: list[tuple[int, int]] = []

    frame = source.fetch(
        SYMBOL, "1h", T0, on_page=lambda done, total: progress.append((done, total))
    )

    expected = as_candles(rows[:-1])
    assert frame.values.tolist() == expected
    assert frame["timestamp"].is_unique and frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].diff().dropna().eq(HOUR).all()
    assert open_candle not in set(frame["timestamp"])
    pages = recorder.kline_pages
    assert len(pages) >= 3  # several pages were really needed
    assert all(len(page) <= source.page_limit for page in pages)
    assert all(int(p[0][0]) > int(p[-1][0]) for p in pages if len(p) > 1)  # served newest first
    assert progress[-1][0] == progress[-1][1] and progress == sorted(progress)


def test_fetch_asks_contiguous_start_end_windows(recorder: BybitRecorder) -> None:
    """Our `until` reaches Bybit as `end`; windows tile [since, last closed open] exactly."""
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    source.fetch(SYMBOL, "1h", T0)
    last_closed_open = recorder.now_ms - HOUR
    asked = recorder.of(KLINE)
    assert [p["symbol"] for p in asked] == ["BTCUSDT"] * len(asked)
    assert all(int(p["limit"]) == source.page_limit <= BYBIT_MAX_LIMIT for p in asked)
    windows = [(int(p["start"]), int(p["end"])) for p in asked]
    assert windows[0][0] == T0 and windows[-1][1] == last_closed_open
    for (_, end), (next_start, _) in itertools.pairwise(windows):
        assert next_start == end + 1
    for start, end in windows:
        assert start % HOUR == 0 and end - start < source.page_limit * HOUR
    assert len(windows) == -(-N_CANDLES // source.page_limit)


def test_fetch_from_mid_candle_starts_at_next_open(recorder: BybitRecorder) -> None:
    """A `since` inside a candle starts at the next open, as the docstring promises."""
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    frame = source.fetch(SYMBOL, "1h", T0 + 17 * 60_000)
    assert frame["timestamp"].iloc[0] == T0 + HOUR
    assert int(recorder.of(KLINE)[0]["start"]) == T0 + HOUR
    assert len(frame) == N_CANDLES - 2


def test_fetch_across_a_hole_in_history_keeps_both_sides() -> None:
    """A window with no candles (an outage) must not end the paging for Bybit."""
    rows = synthetic_klines(T0, N_CANDLES)
    kept = rows[:800] + rows[2100:]  # candles 800..2099 missing: one whole window is empty
    recorder = offline_bybit(int(rows[-1][0]) + HOUR // 2, kept)
    frame = CcxtCandleSource(recorder.exchange, retry=NO_WAIT).fetch(SYMBOL, "1h", T0)
    assert frame.values.tolist() == as_candles(kept[:-1])
    assert [] in recorder.kline_pages


def test_fetch_with_nothing_closed_yet_asks_no_klines() -> None:
    """`since` at the open candle: nothing is closed, so nothing is fetched or returned."""
    rows = synthetic_klines(T0, 3)
    recorder = offline_bybit(int(rows[-1][0]) + 60_000, rows)
    frame = CcxtCandleSource(recorder.exchange, retry=NO_WAIT).fetch(SYMBOL, "1h", int(rows[-1][0]))
    assert frame.empty and recorder.of(KLINE) == []
    assert len(recorder.of(TIME)) == 1


# --- error shapes -----------------------------------------------------------------------------


def test_rate_limit_retcode_twice_then_success_is_survived(recorder: BybitRecorder) -> None:
    """retCode 10006 maps to ccxt RateLimitExceeded, which with_retries retries."""
    recorder.fail_next(KLINE, bybit_error(10006, "Too many visits!", recorder.now_ms), times=2)
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    frame = source.fetch(SYMBOL, "1h", T0)
    assert frame.values.tolist() == as_candles(synthetic_klines(T0, N_CANDLES)[:-1])
    asked = recorder.of(KLINE)
    assert asked[0] == asked[1] == asked[2]  # the same window, asked again
    assert len(asked) == 3 + 2


def test_with_retries_backs_off_between_rate_limited_attempts(recorder: BybitRecorder) -> None:
    """The waits double from backoff_s; the call's result is what comes back."""
    recorder.fail_next(KLINE, bybit_error(10006, "Too many visits!", recorder.now_ms), times=2)
    exchange = recorder.exchange
    exchange.load_markets()
    waits: list[float] = []
    candles = with_retries(
        lambda: exchange.fetch_ohlcv(
            SYMBOL, "1h", since=T0, limit=5, params={"until": T0 + 4 * HOUR}
        ),
        "bybit BTC/USDT:USDT 1h",
        RetryPolicy(backoff_s=0.01),
        sleep=waits.append,
    )
    assert waits == [0.01, 0.02]
    assert candles == as_candles(synthetic_klines(T0, 5))


def test_rate_limit_past_the_retry_bound_gives_up_clearly(recorder: BybitRecorder) -> None:
    recorder.fail_next(KLINE, bybit_error(10006, "Too many visits!", recorder.now_ms), times=3)
    source = CcxtCandleSource(recorder.exchange, retry=RetryPolicy(attempts=3, backoff_s=0.0))
    with pytest.raises(ExchangeSourceError, match="gave up after 3 attempts") as caught:
        source.fetch(SYMBOL, "1h", T0)
    assert "bybit BTC/USDT:USDT 1h" in str(caught.value)
    assert isinstance(caught.value.__cause__, ccxt.RateLimitExceeded)
    assert len(recorder.of(KLINE)) == 3


def test_params_error_fails_at_once_naming_exchange_market_timeframe(
    recorder: BybitRecorder,
) -> None:
    """retCode 10001 is ccxt BadRequest: retrying cannot help, so one request and a clear error."""
    recorder.fail_next(KLINE, bybit_error(10001, "Invalid period!", recorder.now_ms))
    source = CcxtCandleSource(recorder.exchange, retry=RetryPolicy(backoff_s=0.0))
    with pytest.raises(ExchangeSourceError) as caught:
        source.fetch(SYMBOL, "1h", T0)
    message = str(caught.value)
    assert "bybit" in message and SYMBOL in message and " 1h" in message
    assert "BadRequest" in message and "Invalid period!" in message
    assert isinstance(caught.value.__cause__, ccxt.BadRequest)
    assert len(recorder.of(KLINE)) == 1


def test_not_supported_symbol_retcode_is_an_unknown_market(recorder: BybitRecorder) -> None:
    """Bybit's 10001 'Not supported symbols' is ccxt BadSymbol; callers see UnknownMarketError."""
    recorder.fail_next(KLINE, bybit_error(10001, "Not supported symbols", recorder.now_ms))
    source = CcxtCandleSource(recorder.exchange, retry=NO_WAIT)
    with pytest.raises(UnknownMarketError, match="bybit BTC/USDT:USDT 1h: unknown market"):
        source.fetch(SYMBOL, "1h", T0)
    assert len(recorder.of(KLINE)) == 1
