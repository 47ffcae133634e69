"""Partitions: market × timeframe, from the configured markets and timeframes."""

from __future__ import annotations

import dagster as dg

from pipeline.exchange.markets import market_id
from pipeline.settings import Settings

_settings = Settings.from_env()

# Keys are exchange market ids (BTCUSDT): Dagster keys may not contain '/', ':' is allowed but
# '|' and ',' are not, and the id is what a trader types anyway.
SYMBOLS_BY_MARKET_ID: dict[str, str] = {market_id(s): s for s in _settings.markets}

market_partitions = dg.StaticPartitionsDefinition(list(SYMBOLS_BY_MARKET_ID))
timeframe_partitions = dg.StaticPartitionsDefinition(list(_settings.timeframes))
ohlcv_partitions = dg.MultiPartitionsDefinition(
    {"market": market_partitions, "timeframe": timeframe_partitions}
)


def partition_key(market: str, timeframe: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"market": market, "timeframe": timeframe})


def symbol_for(market: str) -> str:
    try:
        return SYMBOLS_BY_MARKET_ID[market]
    except KeyError as err:
        raise ValueError(
            f"market {market!r} is not configured (SIGNALS_MARKETS): "
            f"{', '.join(SYMBOLS_BY_MARKET_ID)}"
        ) from err
