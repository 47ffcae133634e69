"""Candles from an exchange through ccxt: paged, closed candles only, bounded retries
(the client and the retry policy come from `pipeline.exchange`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.data.candles import candle_frame
from pipeline.data.schema import refused
from pipeline.data.timeframes import ms_to_iso, timeframe_ms
from pipeline.exchange.ids import BINANCE_USDM, BYBIT
from pipeline.exchange.markets import UnknownMarketError
from pipeline.exchange.retry import RetryPolicy, with_retries

if TYPE_CHECKING:
    import ccxt

# Largest page per klines request as ccxt sends it (ccxt caps Binance at 1000, not the API's 1500).
PAGE_LIMITS = {BINANCE_USDM: 1000, BYBIT: 1000}
# Exchanges whose klines answer `since` alone with the first candles at or after it, so an
# empty window (before a listing, across a long outage) can jump straight to the next candle.
ASCENDING_FROM_SINCE = {BINANCE_USDM}


class CcxtCandleSource:
    """Closed candles of linear perpetuals from one exchange."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        retry: RetryPolicy | None = None,
        page_limit: int | None = None,
    ):
        self.exchange = exchange
        self.retry = retry or RetryPolicy()
        most = PAGE_LIMITS.get(exchange.id, 1000)
        # A larger page than the exchange serves would silently lose the rest of each window.
        self.page_limit = max(2, min(page_limit or most, most))
        self._markets_loaded = False
        # (rule, field, raw row) of each unreadable row of the page being fetched
        self._unreadable: list[tuple[str, str, object]] = []
        self._watch_raw_rows()

    def _watch_raw_rows(self) -> None:
        """Note every raw kline whose open time, prices or volume ccxt cannot read.

        ccxt's since filter drops a row without a readable open time without a word (it keeps
        only integer open times at or after `since`), so a page with garbage in it would be
        stored as a clean page with a hole; and it reads a price that is no number (text,
        null, a missing field) as None, which the schema would report as a NaN price, not as
        what the exchange sent. Wrapping the client's row parser is the one place that sees
        every raw row, on every exchange, before that filter.
        """
        parse = self.exchange.parse_ohlcv

        def parse_and_check(ohlcv: object, market: object = None) -> list:
            row = parse(ohlcv, market)
            opened = row[0] if row else None
            if not isinstance(opened, int) or isinstance(opened, bool) or opened <= 0:
                self._unreadable.append(("open_time_readable", "open time", ohlcv))
            elif len(row) < 6 or any(value is None for value in row[1:6]):
                self._unreadable.append(("values_readable", "price or volume", ohlcv))
            return row

        self.exchange.parse_ohlcv = parse_and_check  # type: ignore[method-assign]

    def _fetch_page(
        self,
        symbol: str,
        timeframe: str,
        what: str,
        since: int,
        limit: int,
        values: bool = True,
        **params: object,
    ) -> list[list]:
        """One klines request (retried); a row with an unreadable open time (or, with
        `values`, price or volume) refuses the batch (rule `open_time_readable` before
        `values_readable`), the raw row shown."""

        def fetch() -> list[list]:
            self._unreadable.clear()
            return self.exchange.fetch_ohlcv(
                symbol, timeframe, since=since, limit=limit, params=params
            )

        page = with_retries(fetch, what, self.retry)
        if not values:
            self._unreadable = [u for u in self._unreadable if u[0] == "open_time_readable"]
        if self._unreadable:
            rules = [rule for rule, _, _ in self._unreadable]
            rule = "open_time_readable" if "open_time_readable" in rules else "values_readable"
            problems = [
                f"{self.exchange_id} sent kline {row!r}: its {field} is unreadable"
                for broken, field, row in self._unreadable
                if broken == rule
            ]
            raise refused(symbol, timeframe, rule, problems)
        return page

    @property
    def exchange_id(self) -> str:
        return str(self.exchange.id)

    def _ensure_markets(self, what: str) -> None:
        if not self._markets_loaded:
            with_retries(self.exchange.load_markets, what, self.retry)
            self._markets_loaded = True

    def check_market(self, symbol: str, what: str | None = None) -> None:
        self._ensure_markets(what or f"{self.exchange_id} {symbol}")
        market = self.exchange.markets.get(symbol)
        if market is None or not market.get("swap") or not market.get("linear"):
            raise UnknownMarketError(
                f"unknown market {symbol} on {self.exchange_id}: not a listed linear perpetual"
            )

    def now_ms(self, what: str | None = None) -> int:
        """The exchange's clock (the replay clock when replaying)."""
        what = what or f"{self.exchange_id} time"
        return int(with_retries(self.exchange.fetch_time, what, self.retry))

    def latest_closed(self, symbol: str, timeframe: str, now_ms: int) -> int | None:
        """Open time of the newest candle closed by `now_ms` (the exchange's clock), or None.

        One small request: what a sensor asks every tick for every market. An open time that
        cannot be read refuses (CandleValidationError): which candle is newest is unknown.
        """
        what = f"{self.exchange_id} {symbol} {timeframe}"
        self.check_market(symbol, what)
        step = timeframe_ms(timeframe)
        last_closed_open = now_ms - now_ms % step - step
        # Only open times matter here: a bad price is the ingest's to refuse.
        page = self._fetch_page(
            symbol, timeframe, what, last_closed_open - 2 * step, 5, values=False
        )
        closed = [int(r[0]) for r in page if int(r[0]) <= last_closed_open]
        return max(closed) if closed else None

    def fetch(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int,
        on_page: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Candles opened at or after `since_ms` and closed by the exchange's clock, ascending.

        Pages are explicit [start, end] windows of one open time fewer than the page limit, so
        a full page shows rows beyond the grid, and an exchange that returns newest first
        (Bybit) or leaves holes in its history still pages forward without skipping.
        `on_page(done_ms, total_ms)` reports progress.
        """
        what = f"{self.exchange_id} {symbol} {timeframe}"
        self.check_market(symbol, what)
        step = timeframe_ms(timeframe)
        last_closed_open = self.now_ms(what) - step
        cursor = since_ms - since_ms % step
        if cursor < since_ms:
            cursor += step
        rows: list[list[float]] = []
        first_cursor = cursor
        while cursor <= last_closed_open:
            # One open time fewer than the page holds: a page that comes back full has more
            # rows than its window has open times, where a window of `page_limit` open times
            # would silently lose the row the limit cut off (an off-grid or duplicate one).
            window_end = min(cursor + step * (self.page_limit - 1) - 1, last_closed_open)
            page = self._fetch_page(
                symbol, timeframe, what, cursor, self.page_limit, until=window_end
            )
            inside = sum(1 for r in page if cursor <= r[0] <= window_end)
            slots = (window_end - cursor) // step + 1
            if inside > slots:
                raise refused(
                    symbol,
                    timeframe,
                    "page_fits_its_window",
                    [
                        f"{self.exchange_id} sent {inside} candles opened from "
                        f"{ms_to_iso(cursor)} to {ms_to_iso(window_end)}, which has "
                        f"{slots} open times: duplicate or off-grid open times"
                    ],
                )
            rows.extend(r for r in page if cursor <= r[0] <= last_closed_open)
            next_cursor = window_end + 1
            if not page and self.exchange_id in ASCENDING_FROM_SINCE:
                probe = self._fetch_page(symbol, timeframe, what, cursor, 1)
                if not probe:
                    break  # nothing at or after the cursor: the history ends here
                next_cursor = max(next_cursor, int(probe[0][0]))
            cursor = next_cursor
            if on_page:
                on_page(
                    min(cursor, last_closed_open) - first_cursor, last_closed_open - first_cursor
                )
        return candle_frame(rows)
