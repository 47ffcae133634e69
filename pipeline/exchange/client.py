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


def make_exchange(
    exchange_id: str = DEFAULT_EXCHANGE,
    api_url: str | None = None,
    timeout_ms: int = 10_000,
    *,
    api_key: str | None = None,
    secret: str | None = None,
) -> ccxt.Exchange:
    """A ccxt client for linear perpetuals, rate limiter on, optionally pointed at another host.

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
    if api_url:
        exchange.urls["api"] = _point_at(exchange.urls["api"], api_url)
    if api_key is not None:
        exchange.apiKey = api_key
    if secret is not None:
        exchange.secret = secret
    return exchange
