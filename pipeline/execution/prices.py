"""Where a broker learns the price a market order would fill at now, and the exchange's time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pipeline.exchange.retry import RetryPolicy, with_retries
from pipeline.execution.broker import MarketRules
from pipeline.execution.market_rules import ccxt_market_rules

if TYPE_CHECKING:
    import ccxt


class PriceFeed(Protocol):
    def quote(self, symbol: str) -> tuple[float, int]:
        """(last price, the exchange's time of it in ms)."""
        ...


class ExchangePriceFeed:
    """The public ticker of an exchange (no keys). On the replay exchange the last price is
    the open of the candle in progress at the replay clock: the backtest's next-open fill."""

    def __init__(self, exchange: ccxt.Exchange, retry: RetryPolicy | None = None):
        self.exchange = exchange
        self.retry = retry or RetryPolicy(attempts=3, backoff_s=0.2)

    def quote(self, symbol: str) -> tuple[float, int]:
        ticker = with_retries(
            lambda: self.exchange.fetch_ticker(symbol),
            f"{self.exchange.id} {symbol} ticker",
            self.retry,
        )
        price = ticker.get("last") or ticker.get("close")
        if not price or price <= 0:
            raise ValueError(f"{self.exchange.id} {symbol}: the ticker has no usable price")
        stamp = ticker.get("timestamp")
        # Bybit's tickers carry no time of their own: then the exchange's clock, not ours (on
        # the replay exchange they differ by years).
        return float(price), int(stamp) if stamp else self.now_ms()

    def now_ms(self) -> int:
        """The exchange's clock (the replay exchange's replay clock)."""
        return int(with_retries(self.exchange.fetch_time, f"{self.exchange.id} time", self.retry))

    def candles(self, symbol: str, timeframe: str, since_ms: int) -> list[list[float]]:
        """Candles [open_ms, open, high, low, close, volume] from `since_ms` on (at most the
        exchange's page; a resting exit is checked every run, so one page is enough)."""
        return with_retries(
            lambda: self.exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=500),
            f"{self.exchange.id} {symbol} {timeframe} candles",
            self.retry,
        )

    def market_rules(self, symbol: str) -> MarketRules:
        """The exchange's amount step and minimum notional for `symbol` (public markets)."""
        with_retries(self.exchange.load_markets, f"{self.exchange.id} markets", self.retry)
        return ccxt_market_rules(self.exchange, symbol)
