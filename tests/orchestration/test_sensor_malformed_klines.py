"""new_candle_sensor when one market's newest klines are malformed: that market is skipped
this tick with its reason (its cursor kept), the others are asked for as usual; a bad price
does not stop the sensor from seeing that a candle closed (the ingest refuses the price)."""

from __future__ import annotations

import json

import dagster as dg

from pipeline.partitions import SYMBOLS_BY_MARKET_ID
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.sensors import new_candle_sensor, run_key
from resources.exchange import CandleSourceResource
from tests.helpers.live import HOUR, LIVE_START, live_folder


def _klines(exchange: ReplayExchange, market: str, count: int) -> list[list]:
    """The market's last `count` closed hours as the replay serves them, raw."""
    now = exchange.clock.now_ms()
    return exchange.market.klines(
        {"symbol": market, "interval": "1h", "endTime": str(now - HOUR), "limit": str(count)}
    )


def test_a_market_with_malformed_klines_is_skipped_alone(tmp_path, sample_frames) -> None:
    folder = live_folder(tmp_path, sample_frames, 4)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START + HOUR + 60_000, speed=1e-9))
    with ReplayServer(exchange) as server:
        source = CandleSourceResource(source="ccxt", api_url=server.url, retry_attempts=1)
        rows = _klines(exchange, "BTCUSDT", 5)
        rows[-1][0] = None  # the newest candle's open time: unreadable
        exchange.market.set_klines("BTCUSDT", rows)
        priced = _klines(exchange, "ETHUSDT", 5)
        priced[-1][4] = "n/a"  # a close that is no number: the ingest's business
        exchange.market.set_klines("ETHUSDT", priced)
        context = dg.build_sensor_context(cursor=None, resources={"candle_source": source})
        result = new_candle_sensor(context)
    keys = [r.run_key for r in result.run_requests or []]
    others = [m for m in SYMBOLS_BY_MARKET_ID if m != "BTCUSDT"]
    assert keys == [run_key(m, "1h", LIVE_START) for m in others]
    assert "BTCUSDT:1h" not in json.loads(result.cursor)
