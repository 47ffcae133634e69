"""Market ids, unified symbols, timeframe grids."""

import pytest

from pipeline.data.timeframes import (
    UnknownTimeframeError,
    floor_to_grid,
    ms_to_iso,
    parse_date_ms,
    timeframe_ms,
)
from pipeline.exchange.markets import (
    UnknownMarketError,
    market_id,
    normalise_symbol,
    symbol_from_id,
)


def test_market_id_round_trips_for_linear_perpetuals() -> None:
    for symbol in ("BTC/USDT:USDT", "1000PEPE/USDT:USDT", "ETH/USDC:USDC"):
        assert symbol_from_id(market_id(symbol)) == symbol
    assert market_id("XRP/USDT:USDT") == "XRPUSDT"


@pytest.mark.parametrize("bad", ["BTC/USDT", "BTC/USD:BTC", "btc", "BTC-USDT"])
def test_market_id_rejects_what_is_not_a_linear_perpetual(bad: str) -> None:
    with pytest.raises(UnknownMarketError, match="BTC"):
        normalise_symbol(bad) if "/" in bad else symbol_from_id(bad)


def test_normalise_accepts_ids_and_symbols() -> None:
    assert normalise_symbol("btcusdt") == "BTC/USDT:USDT"
    assert normalise_symbol("ETH/USDT:USDT") == "ETH/USDT:USDT"


def test_timeframes_define_the_grid() -> None:
    assert timeframe_ms("1h") == 3_600_000
    assert timeframe_ms("4h") == 4 * 3_600_000
    assert timeframe_ms("1d") == 86_400_000
    assert floor_to_grid(parse_date_ms("2021-01-01T10:30:00Z"), "4h") == parse_date_ms(
        "2021-01-01T08:00:00Z"
    )
    with pytest.raises(UnknownTimeframeError, match="7h"):
        timeframe_ms("7h")


def test_dates_are_utc() -> None:
    assert parse_date_ms("2021-01-01") == 1609459200000
    assert parse_date_ms("2021-01-01T01:00:00+01:00") == 1609459200000
    assert ms_to_iso(1609459200000) == "2021-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_date_ms("yesterday")
