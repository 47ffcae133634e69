"""Partitions: market × timeframe and the base timeframe, from the location's one Settings."""

from __future__ import annotations

import dagster as dg

from pipeline.exchange.markets import market_id
from pipeline.location import SETTINGS

# Keys are exchange market ids (BTCUSDT): Dagster keys may not contain '/', ':' is allowed but
# '|' and ',' are not, and the id is what a trader types anyway.
SYMBOLS_BY_MARKET_ID: dict[str, str] = {market_id(s): s for s in SETTINGS.markets}
# The markets `lstm_model` is fitted on (every configured one), so the market factor's basket:
# the features asset computes the factor over them, and the model record keeps them.
FACTOR_BASKET: tuple[str, ...] = tuple(sorted(SYMBOLS_BY_MARKET_ID.values()))
TIMEFRAMES: tuple[str, ...] = SETTINGS.timeframes
# The finest configured timeframe: candles are ingested and features computed on it.
BASE_TIMEFRAME: str = SETTINGS.base_timeframe
# What the product trades (`portfolio` or `barrier`: the Definitions wire that strategy's
# chain), the portfolio's decision timeframe, and the timeframe the live models decide on.
STRATEGY: str = SETTINGS.strategy
DECISION_TIMEFRAME: str = SETTINGS.decision_timeframe
MODEL_TIMEFRAME: str = SETTINGS.model_timeframe

market_partitions = dg.StaticPartitionsDefinition(list(SYMBOLS_BY_MARKET_ID))
timeframe_partitions = dg.StaticPartitionsDefinition(list(TIMEFRAMES))
ohlcv_partitions = dg.MultiPartitionsDefinition(
    {"market": market_partitions, "timeframe": timeframe_partitions}
)


def partition_key(market: str, timeframe: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"market": market, "timeframe": timeframe})


# Every market's features on the base timeframe: what selection, training and the backtests
# read (the baselines are fitted on all markets' training windows).
BASE_FEATURE_PARTITIONS = dg.SpecificPartitionsPartitionMapping(
    [str(partition_key(m, BASE_TIMEFRAME)) for m in SYMBOLS_BY_MARKET_ID]
)


# Every market's features on the decision timeframe: what the portfolio's selection, model
# and backtests read.
DECISION_FEATURE_PARTITIONS = dg.SpecificPartitionsPartitionMapping(
    [str(partition_key(m, DECISION_TIMEFRAME)) for m in SYMBOLS_BY_MARKET_ID]
)


def symbol_for(market: str) -> str:
    try:
        return SYMBOLS_BY_MARKET_ID[market]
    except KeyError as err:
        raise ValueError(
            f"market {market!r} is not configured (SIGNALS_MARKETS): "
            f"{', '.join(SYMBOLS_BY_MARKET_ID)}"
        ) from err
