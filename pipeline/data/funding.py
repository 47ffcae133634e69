"""Funding-rate history of linear perpetuals through ccxt: paged, validated, stored idempotently.

The backtest charges these rates at each settlement (00/08/16 UTC on Binance); where none are
stored it falls back to a stated constant (`pipeline.backtest.funding`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.data.ccxt_source import ASCENDING_FROM_SINCE, CcxtCandleSource
from pipeline.data.funding_rows import (  # noqa: F401  (re-exported: the ingest's API)
    MAX_ABS_RATE,
    FundingHistoryError,
    FundingRows,
    validate_funding,
)
from pipeline.data.timeframes import HOUR_MS
from pipeline.exchange.ids import BINANCE_USDM, BYBIT, DEFAULT_EXCHANGE
from pipeline.exchange.retry import RetryPolicy, with_retries
from pipeline.store import funding as funding_store
from pipeline.store.database import Database

if TYPE_CHECKING:
    import ccxt

# Most rows per fundingRate request: Binance serves up to 1000, Bybit 200.
PAGE_LIMITS = {BINANCE_USDM: 1000, BYBIT: 200}
# No exchange here settles more often than hourly, so a window of `limit` hours never holds
# more than `limit` rows (for exchanges that answer a window newest first, e.g. Bybit).
SHORTEST_INTERVAL_MS = HOUR_MS


class CcxtFundingSource:
    """Funding settlements of linear perpetuals from one exchange, with bounded retries."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        retry: RetryPolicy | None = None,
        page_limit: int | None = None,
    ):
        self.exchange = exchange
        self.retry = retry or RetryPolicy()
        most = PAGE_LIMITS.get(exchange.id, 100)
        self.page_limit = min(page_limit or most, most)
        # The same market check as candles: one load_markets per client, a clear unknown market.
        self._markets = CcxtCandleSource(exchange, self.retry)

    @property
    def exchange_id(self) -> str:
        return str(self.exchange.id)

    def check_market(self, symbol: str) -> None:
        self._markets.check_market(symbol, f"{self.exchange_id} {symbol} funding")

    def fetch(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        on_page: Callable[[int, int], None] | None = None,
    ) -> FundingRows:
        """Validated (funding_ms, rate) settled in [start_ms, end_ms], ascending.

        Exchanges that answer `since` with the oldest rows first (Binance) page from the last
        row seen; the others page through windows that cannot hold more than one page.
        """
        what = f"{self.exchange_id} {symbol} funding"
        self.check_market(symbol)
        ascending = self.exchange_id in ASCENDING_FROM_SINCE
        raw: list[tuple[int, float | None]] = []
        cursor = start_ms
        while cursor <= end_ms:
            until = end_ms if ascending else min(end_ms, cursor + self.page_limit * HOUR_MS - 1)
            page = with_retries(
                lambda c=cursor, u=until: self.exchange.fetch_funding_rate_history(
                    symbol, since=c, limit=self.page_limit, params={"until": u}
                ),
                what,
                self.retry,
            )
            raw.extend(
                (int(r["timestamp"]), r["fundingRate"]) for r in page if r["timestamp"] <= end_ms
            )
            if ascending:
                if len(page) < self.page_limit:
                    break  # the whole rest of [cursor, end_ms] came in this page
                cursor = int(page[-1]["timestamp"]) + 1
            else:
                cursor = until + 1
            if on_page:
                on_page(min(cursor, end_ms) - start_ms, end_ms - start_ms)
        return validate_funding(raw, what)


def open_funding_source(
    exchange: str = DEFAULT_EXCHANGE,
    api_url: str | None = None,
    retry: RetryPolicy | None = None,
    timeout_ms: int = 10_000,
    page_limit: int | None = None,
) -> CcxtFundingSource:
    """A funding source on a fresh ccxt client (optionally pointed at the replay exchange)."""
    from pipeline.exchange.client import make_exchange  # ccxt: loaded when a client is made

    return CcxtFundingSource(make_exchange(exchange, api_url, timeout_ms), retry, page_limit)


# Resume half a second after the newest stored settlement: its raw time may lie up to 0.5 s
# either side of the stored (rounded) one, and the next settlement is hours later.
_RESUME_AFTER_MS = 500


def ingest_funding(
    db: Database,
    source: CcxtFundingSource,
    market: str,
    start_ms: int,
    end_ms: int,
    on_page: Callable[[int, int], None] | None = None,
) -> int:
    """Fetch what is new since the newest stored settlement (or `start_ms`), validate, upsert.

    Like candles, a stored history only grows forward, so it never has a hole that ingestion
    made. The whole batch is validated before anything is written. Returns rows written.
    """
    exchange = source.exchange_id
    with db.connection() as conn:
        newest = funding_store.newest_funding_ms(conn, exchange, market)
    since = start_ms if newest is None else newest + _RESUME_AFTER_MS
    if since > end_ms:
        source.check_market(market)  # an unknown market is an error even with nothing to do
        return 0
    rows = source.fetch(market, since, end_ms, on_page)
    with db.connection() as conn:
        return funding_store.upsert_funding(conn, exchange, market, rows)
