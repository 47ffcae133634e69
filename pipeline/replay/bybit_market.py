"""The replay exchange's public side in Bybit v5's dialect: the same recorded candles, market
rules, clock and funding settlements that the Binance endpoints serve, answered as Bybit's
`/v5/market/*` answers (linear USDT perpetuals only; lists newest first; numbers as strings).

As on the Binance side, a candle not yet closed at the replay clock is not served (Bybit
itself also sends the candle in progress; clients drop it, and ours does).
"""

from __future__ import annotations

import contextlib

import numpy as np

from pipeline.data.timeframes import timeframe_ms
from pipeline.replay.bybit_errors import BybitError, params_error
from pipeline.replay.errors import BinanceError
from pipeline.replay.funding import ReplayFunding
from pipeline.replay.market_data import ReplayMarket

CATEGORY = "linear"
# Bybit's kline intervals (minutes, or D) → the timeframes the candle folder aggregates to.
INTERVALS = {"60": "1h", "120": "2h", "240": "4h", "360": "6h", "720": "12h", "D": "1d"}
KLINE_LIMIT, KLINE_MAX = 200, 1000
FUNDING_LIMIT, FUNDING_MAX = 200, 200
FUNDING_INTERVAL_MIN = 480


def _int(query: dict[str, str], name: str, default: int | None = None) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise params_error(f"{name} is not an integer") from None


def _limit(query: dict[str, str], default: int, most: int) -> int:
    limit = _int(query, "limit", default)
    assert limit is not None
    if not 1 <= limit <= most:
        raise params_error(f"limit must lie in [1, {most}]")
    return limit


def _category(query: dict[str, str]) -> None:
    if query.get("category") != CATEGORY:
        raise params_error("category: the replay serves linear perpetuals only")


def _window(
    times: np.ndarray, visible: int, start: int | None, end: int | None, limit: int
) -> tuple[int, int]:
    """Index range [lo, hi) of the rows Bybit serves: opened in [start, end] (end: the newest
    visible), the newest `limit` of them; with a start and no end, the first `limit` from it."""
    hi = visible if end is None else min(visible, int(np.searchsorted(times, end, "right")))
    lo = 0 if start is None else int(np.searchsorted(times, start, "left"))
    if start is not None and end is None:
        return lo, min(hi, lo + limit)
    return max(lo, hi - limit), hi


class BybitMarket:
    """GET /v5/market/{time, instruments-info, kline, tickers, funding/history}."""

    def __init__(self, market: ReplayMarket, funding: ReplayFunding):
        self.market, self.funding = market, funding
        self.data, self.clock = market.data, market.clock

    def _symbol(self, query: dict[str, str], required: bool = True) -> str | None:
        symbol = query.get("symbol")
        if not symbol:
            if required:
                raise params_error("symbol is required")
            return None
        if symbol not in self.data.base:
            raise BybitError(10001, "Not supported symbols")
        return symbol

    def time(self, query: dict[str, str]) -> dict:
        now = self.clock.now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def instruments_info(self, query: dict[str, str]) -> dict:
        """Every market of the folder as a trading linear perpetual; none pre-listed."""
        _category(query)
        wanted = self._symbol(query, required=False)
        rows = []
        if query.get("status") in (None, "", "Trading"):
            for symbol in self.data.symbols():
                if wanted in (None, symbol):
                    rows.append(self._instrument(symbol))
        return {"category": CATEGORY, "list": rows, "nextPageCursor": ""}

    def _instrument(self, symbol: str) -> dict:
        rules = self.market.rules[symbol]
        tick = str(rules.tick)
        return {
            "symbol": symbol,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": symbol[:-4],
            "quoteCoin": symbol[-4:],
            "launchTime": str(int(self.data.base[symbol]["timestamp"].iloc[0])),
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(self.market.price_decimals[symbol]),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "125.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "10000000", "tickSize": tick},
            "lotSizeFilter": {
                "maxOrderQty": str(rules.max_qty),
                "minOrderQty": str(rules.min_qty),
                "qtyStep": str(rules.step),
                "postOnlyMaxOrderQty": str(rules.max_qty),
                "maxMktOrderQty": str(rules.max_qty),
                "minNotionalValue": f"{rules.min_notional:g}",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": FUNDING_INTERVAL_MIN,
            "settleCoin": symbol[-4:],
            "copyTrading": "none",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False,
            "preListingInfo": None,
            "displayName": "",
        }

    def kline(self, query: dict[str, str]) -> dict:
        """GET /v5/market/kline: [startTime, open, high, low, close, volume, turnover], newest
        first (injected raw rows instead, when a data fault is set for the market)."""
        _category(query)
        symbol = query.get("symbol", "")
        interval = INTERVALS.get(query.get("interval", ""))
        if symbol in self.market.kline_overrides and interval is not None:
            rows = self._raw_page(self.market.kline_overrides[symbol], query)
            return {"symbol": symbol, "category": CATEGORY, "list": rows}
        self._symbol(query)
        if interval is None:
            raise params_error("interval is not supported")
        limit = _limit(query, KLINE_LIMIT, KLINE_MAX)
        start, end = _int(query, "start"), _int(query, "end")
        step = timeframe_ms(interval)
        series = self.data.series(symbol, interval)
        opens = series[:, 0].astype("int64")
        visible = int(np.searchsorted(opens, self.clock.now_ms() - step, side="right"))
        lo, hi = _window(opens, visible, start, end, limit)
        rows = [
            [str(int(r[0])), repr(r[1]), repr(r[2]), repr(r[3]), repr(r[4]), repr(r[5]),
             repr(r[4] * r[5])]
            for r in series[lo:hi].tolist()
        ]  # fmt: skip
        rows.reverse()
        return {"symbol": symbol, "category": CATEGORY, "list": rows}

    @staticmethod
    def _raw_page(rows: list[list], query: dict[str, str]) -> list:
        """Injected raw rows (a data fault): those whose first field reads as an open time in
        [start, end] (the others go with the row before, as on the Binance side), the newest
        `limit`, newest first; each row as injected, wrong types and all."""
        start, end = _int(query, "start"), _int(query, "end")
        limit = _int(query, "limit", KLINE_LIMIT) or KLINE_LIMIT
        placed: list[tuple[int, list]] = []
        previous = None
        for row in rows:
            value = row[0] if row else None
            if isinstance(value, int | str) and not isinstance(value, bool):
                with contextlib.suppress(ValueError):
                    previous = int(value)
            placed.append((previous if previous is not None else 0, row))
        chosen = [
            row for t, row in placed if (start is None or t >= start) and (end is None or t <= end)
        ]
        chosen = chosen[:limit] if start is not None and end is None else chosen[-limit:]
        return list(reversed(chosen))

    def tickers(self, query: dict[str, str]) -> dict:
        """GET /v5/market/tickers: lastPrice = the fill price now; 24h figures from the hours
        closed in the last day (the Binance side's ticker, in Bybit's words)."""
        _category(query)
        symbol = self._symbol(query, required=False)
        try:
            binance = self.market.ticker_24hr({"symbol": symbol} if symbol else {})
        except BinanceError:
            raise BybitError(10001, "Not supported symbols") from None
        rows = [binance] if isinstance(binance, dict) else binance
        return {"category": CATEGORY, "list": [self._ticker(row) for row in rows]}

    def _ticker(self, row: dict) -> dict:
        last = row["lastPrice"]
        change = float(row["priceChangePercent"]) / 100
        return {
            "symbol": row["symbol"],
            "lastPrice": last,
            "indexPrice": last,
            "markPrice": last,
            "prevPrice24h": row["openPrice"],
            "price24hPcnt": f"{change:.6f}",
            "highPrice24h": row["highPrice"],
            "lowPrice24h": row["lowPrice"],
            "prevPrice1h": last,
            "openInterest": "0",
            "openInterestValue": "0",
            "turnover24h": row["quoteVolume"],
            "volume24h": row["volume"],
            "fundingRate": "",
            "nextFundingTime": "",
            "predictedDeliveryPrice": "",
            "basisRate": "",
            "deliveryFeeRate": "",
            "deliveryTime": "0",
            "ask1Size": "0",
            "bid1Price": last,
            "ask1Price": last,
            "bid1Size": "0",
            "basis": "",
        }

    def funding_history(self, query: dict[str, str]) -> dict:
        """GET /v5/market/funding/history: settlements in [startTime, endTime] (endTime: now),
        the newest `limit` (≤ 200), newest first. As on Bybit, a startTime needs an endTime."""
        _category(query)
        symbol = self._symbol(query)
        assert symbol is not None
        limit = _limit(query, FUNDING_LIMIT, FUNDING_MAX)
        start, end = _int(query, "startTime"), _int(query, "endTime")
        if start is not None and end is None:
            raise params_error("startTime needs endTime")
        times, rates = self.funding.series(symbol)
        visible = int(np.searchsorted(times, self.clock.now_ms(), side="right"))
        lo, hi = _window(times, visible, start, end, limit)
        rows = [
            {"symbol": symbol, "fundingRate": f"{rate:.8f}", "fundingRateTimestamp": str(t)}
            for t, rate in zip(times[lo:hi].tolist(), rates[lo:hi].tolist(), strict=True)
        ]
        rows.reverse()
        return {"category": CATEGORY, "list": rows}
