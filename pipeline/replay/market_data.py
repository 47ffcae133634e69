"""The replay exchange's public side: recorded 1h candles served as Binance serves klines
(higher timeframes aggregated on the fly, candles not yet closed at the replay clock hidden),
with the market list, the clock and tickers priced at the candle in progress."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from pipeline.data.aggregate import aggregate
from pipeline.data.csv_source import BASE_TIMEFRAME, CandleFolder
from pipeline.data.schema import validate_candles
from pipeline.data.timeframes import HOUR_MS, timeframe_ms
from pipeline.exchange.markets import market_id
from pipeline.replay.clock import ReplayClock
from pipeline.replay.errors import BinanceError

INTERVALS = ("1h", "2h", "4h", "6h", "8h", "12h", "1d")
DEFAULT_LIMIT, MAX_LIMIT = 500, 1500


@dataclass(frozen=True)
class MarketRules:
    """The filters exchangeInfo publishes for one market, enforced on every order."""

    tick: Decimal
    step: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("1000000")
    min_notional: float = 5.0


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

    def last_close_ms(self) -> int:
        """When the folder's newest 1h candle closes (the latest over its markets)."""
        return max(int(f["timestamp"].iloc[-1]) for f in self.base.values()) + HOUR_MS

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
        return float(open_prices[i] if now_ms < opens[i] + HOUR_MS else closes[i])

    def series(self, market: str, interval: str) -> np.ndarray:
        """(n, 6) float array [open_time, o, h, l, c, v] of complete candles, ascending."""
        key = (market, interval)
        with self._lock:
            if key not in self._cache:
                frame = aggregate(self.base[market], BASE_TIMEFRAME, interval)
                self._cache[key] = frame.to_numpy(dtype="float64")
            return self._cache[key]


def _open_time(row: list) -> int | None:
    """A raw row's open time when it is an integer (as Binance sends it), else None."""
    value = row[0] if row else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _page_of_raw_rows(rows: list[list], query: dict[str, str]) -> list[list]:
    """The page of injected raw rows that `startTime`, `endTime` and `limit` select, in the
    order injected. A row whose open time is not an integer goes with the row before it (or,
    at the head, the first row after it), so it is served once, on the page where it sits.
    """
    try:
        start = int(query["startTime"]) if "startTime" in query else None
        end = int(query["endTime"]) if "endTime" in query else None
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
    times = [_open_time(r) for r in rows]
    known = [t for t in times if t is not None]
    placed: list[int] = []
    previous = known[0] if known else 0
    for t in times:
        previous = t if t is not None else previous
        placed.append(previous)
    chosen = [
        row
        for row, t in zip(rows, placed, strict=True)
        if (start is None or t >= start) and (end is None or t <= end)
    ]
    return chosen[:limit] if start is not None else chosen[-limit:]


def _price_decimals(values: np.ndarray) -> int:
    sample = values[: min(len(values), 2000)]
    for decimals in range(0, 9):
        if np.allclose(sample * 10**decimals, np.round(sample * 10**decimals), atol=1e-6):
            return decimals
    return 8


class ReplayMarket:
    """The public endpoints (no signature): ping, time, exchangeInfo, klines and tickers.

    Each market's price precision (and so its tick) is read off its recorded closes.
    """

    def __init__(self, data: ReplayMarketData, clock: ReplayClock):
        self.data, self.clock = data, clock
        # Data faults: raw kline rows served instead of the recorded candles (see set_klines).
        self.kline_overrides: dict[str, list] = {}
        self.price_decimals = {
            market: _price_decimals(frame["close"].to_numpy())
            for market, frame in data.base.items()
        }
        self.rules = {
            market: MarketRules(tick=Decimal(1).scaleb(-decimals))
            for market, decimals in self.price_decimals.items()
        }

    def price(self, market: str) -> float | None:
        """The price a market order fills at now (see `ReplayMarketData.price`)."""
        return self.data.price(market, self.clock.now_ms())

    def ping(self, query: dict[str, str]) -> dict:
        return {}

    def server_time(self, query: dict[str, str]) -> dict:
        return {"serverTime": self.clock.now_ms()}

    def exchange_info(self, query: dict[str, str] | None = None) -> dict:
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
                    "orderTypes": ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"],
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

    def set_klines(self, market: str, rows: list | None) -> None:
        """Serve `rows` (raw kline arrays, whatever their types) as `market`'s klines on every
        interval, instead of the recorded candles; None serves the recording again.

        A data fault: it lets a client be tried on the malformed pages an exchange can send
        (NaN, wrong types, short rows, duplicates, disorder) through its real parser.
        """
        if rows is None:
            self.kline_overrides.pop(market, None)
            return
        if market not in self.data.base:
            raise ValueError(f"unknown market {market!r}: the recording lists {self.symbols()}")
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ValueError("rows must be a list of kline arrays")
        self.kline_overrides[market] = rows

    def symbols(self) -> list[str]:
        return self.data.symbols()

    def klines(self, query: dict[str, str]) -> list[list]:
        """GET /fapi/v1/klines: only candles closed by the replay clock exist yet (unless raw
        rows were injected for the market: then those, see `set_klines`)."""
        market = query.get("symbol", "")
        interval = query.get("interval", "")
        if market in self.kline_overrides and interval in INTERVALS:
            return _page_of_raw_rows(self.kline_overrides[market], query)
        if market not in self.data.base:
            raise BinanceError(-1121, "Invalid symbol.")
        if interval not in INTERVALS:
            raise BinanceError(-1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        step = timeframe_ms(interval)
        rows = self.data.series(market, interval)
        opens = rows[:, 0].astype("int64")
        visible = int(np.searchsorted(opens, self.clock.now_ms() - step, side="right"))
        hi = visible if end is None else min(visible, int(np.searchsorted(opens, end, "right")))
        if start is not None:
            lo = int(np.searchsorted(opens, start, side="left"))
            chosen = rows[lo : min(hi, lo + limit)]
        else:
            chosen = rows[max(0, hi - limit) : hi]
        return [
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
            lo, hi = np.searchsorted(hours[:, 0], [now - 24 * HOUR_MS, now - HOUR_MS], side="right")
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
                    "openTime": now - 24 * HOUR_MS,
                    "closeTime": now,
                    "firstId": 0,
                    "lastId": 0,
                    "count": len(day),
                }
            )
        return rows[0] if "symbol" in query and rows else rows
