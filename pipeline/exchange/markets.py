"""Markets: ccxt unified symbols (`BTC/USDT:USDT`) and the exchange ids used as partition keys."""

from __future__ import annotations

import re

_LINEAR_PERP = re.compile(r"^(?P<base>[A-Z0-9]+)/(?P<quote>[A-Z0-9]+):(?P<settle>[A-Z0-9]+)$")
_MARKET_ID = re.compile(r"^(?P<base>[A-Z0-9]+?)(?P<quote>USDT|USDC)$")


class UnknownMarketError(ValueError):
    pass


def market_id(symbol: str) -> str:
    """Exchange market id of a linear perpetual (`BTC/USDT:USDT` → `BTCUSDT`).

    Binance USDⓈ-M and Bybit name their USDT perpetuals BASE+QUOTE; this is the partition key,
    free of the characters Dagster forbids. The exchange id proper always comes from ccxt's
    market table (some Bybit USDC perpetuals are named differently, e.g. BTCPERP).
    """
    match = _LINEAR_PERP.match(symbol)
    if not match or match["quote"] != match["settle"]:
        raise UnknownMarketError(
            f"{symbol!r} is not a linear perpetual in ccxt's unified form, e.g. 'BTC/USDT:USDT'"
        )
    return f"{match['base']}{match['quote']}"


def symbol_from_id(market: str) -> str:
    """Inverse of `market_id` for USDT/USDC-settled perpetuals (`BTCUSDT` → `BTC/USDT:USDT`)."""
    match = _MARKET_ID.match(market)
    if not match:
        raise UnknownMarketError(f"cannot read market id {market!r}; expected e.g. 'BTCUSDT'")
    return f"{match['base']}/{match['quote']}:{match['quote']}"


def normalise_symbol(text: str) -> str:
    """Accept a unified symbol or an exchange id; return the unified symbol."""
    text = text.strip().upper()
    if "/" in text:
        market_id(text)  # validates the form
        return text
    return symbol_from_id(text)
