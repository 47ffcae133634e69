"""Which of the replay exchange's paths serve what, per exchange it speaks: so that tests,
trials and demos can aim a fault at "the order request" or "the klines" whichever exchange's
client is talking (Binance USDⓈ-M under /fapi/, Bybit v5 under /v5/)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.exchange.ids import BINANCE_USDM, BYBIT


@dataclass(frozen=True)
class Dialect:
    exchange: str
    order: str  # POST: a new order
    klines: str  # GET: candles
    positions: str  # GET: the positions ccxt's fetch_positions reads
    key_header: str  # the request header that carries the API key
    trading_prefixes: tuple[str, ...]  # the signed paths that place orders or read the account


DIALECTS = {
    BINANCE_USDM: Dialect(
        BINANCE_USDM,
        order="/fapi/v1/order",
        klines="/fapi/v1/klines",
        positions="/fapi/v3/positionRisk",
        key_header="X-MBX-APIKEY",
        trading_prefixes=("/fapi/v1/order", "/fapi/v2", "/fapi/v3"),
    ),
    BYBIT: Dialect(
        BYBIT,
        order="/v5/order/create",
        klines="/v5/market/kline",
        positions="/v5/position/list",
        key_header="X-BAPI-API-KEY",
        trading_prefixes=("/v5/order", "/v5/position", "/v5/account", "/v5/execution"),
    ),
}


def dialect(exchange: str) -> Dialect:
    """The replay's paths for `exchange`'s ccxt client; a clear error for one it does not speak."""
    try:
        return DIALECTS[exchange]
    except KeyError:
        raise ValueError(
            f"the replay exchange does not speak {exchange!r}; it speaks {', '.join(DIALECTS)}"
        ) from None
