"""Building a ccxt client for linear perpetuals, optionally pointed at another host (a testnet,
the replay exchange) and optionally holding API credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt

from pipeline.exchange.ids import BINANCE_USDM, BYBIT, DEFAULT_EXCHANGE

SUPPORTED_EXCHANGES = (BINANCE_USDM, BYBIT)


def _point_at(urls: Any, api_url: str) -> Any:
    """Every API URL of a ccxt exchange, re-rooted at `api_url` (path kept)."""
    if isinstance(urls, dict):
        return {key: _point_at(value, api_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        parts = urlsplit(urls)
        rest = urls[len(f"{parts.scheme}://{parts.netloc}") :]
        return api_url.rstrip("/") + rest
    return urls


class UnparsableAnswer(ccxt.BadResponse):
    """A 2xx answer whose body is not JSON (a proxy's page, a stream cut short). ccxt would
    hand the raw text on and its parsers would read it as nothing (no candles, an empty
    order); as a `BadResponse` (an `OperationFailed`) it is retried like a network error,
    and an order sent with it is looked up before it is sent again."""


def _refuse_unparsable(exchange: ccxt.Exchange) -> None:
    """Make `exchange` raise `UnparsableAnswer` on a 2xx answer ccxt could not parse."""
    handle_errors = exchange.handle_errors

    def checked(code, reason, url, method, headers, body, response, *rest):  # type: ignore[no-untyped-def]
        if response is None and body and 200 <= int(code or 0) < 300:
            raise UnparsableAnswer(
                f"{exchange.id} {method} {url}: HTTP {code} with a body that is not JSON: "
                f"{body[:80]!r}"
            )
        return handle_errors(code, reason, url, method, headers, body, response, *rest)

    exchange.handle_errors = checked


def make_exchange(
    exchange_id: str = DEFAULT_EXCHANGE,
    api_url: str | None = None,
    timeout_ms: int = 10_000,
    *,
    api_key: str | None = None,
    secret: str | None = None,
) -> ccxt.Exchange:
    """A ccxt client for linear perpetuals, rate limiter on, optionally pointed at another host;
    a 2xx answer that is not JSON raises `UnparsableAnswer` (retryable) instead of reading as
    empty.

    Without `api_key` / `secret` it can only read public endpoints (candles, tickers).
    """
    if exchange_id not in SUPPORTED_EXCHANGES:
        raise ValueError(
            f"unsupported exchange {exchange_id!r}; supported: {', '.join(SUPPORTED_EXCHANGES)}"
        )
    options: dict[str, Any] = {"defaultType": "swap"}
    if exchange_id == BYBIT:
        options.update({"defaultSubType": "linear", "fetchMarkets": {"types": ["linear"]}})
    exchange = getattr(ccxt, exchange_id)(
        {"enableRateLimit": True, "timeout": timeout_ms, "options": options}
    )
    if exchange_id == BYBIT:
        # Bybit's 10016 "system error, try again later": the outcome is unknown, like Binance's
        # -1000, which ccxt makes an OperationFailed (retried; an order is looked up first).
        # ccxt makes 10016 a bare ExchangeError, which nothing would retry.
        exact = {**exchange.exceptions["exact"], "10016": ccxt.OperationFailed}
        exchange.exceptions = {**exchange.exceptions, "exact": exact}
    _refuse_unparsable(exchange)
    if api_url:
        exchange.urls["api"] = _point_at(exchange.urls["api"], api_url)
    if api_key is not None:
        exchange.apiKey = api_key
    if secret is not None:
        exchange.secret = secret
    return exchange
