"""new_candle_sensor after a pause and after a cursor restored from an older save: it asks for
every missed candle, at most MAX_CANDLES_PER_TICK per market per tick, in order, once each."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pipeline.partitions import SYMBOLS_BY_MARKET_ID
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.sensors import MAX_CANDLES_PER_TICK, new_candle_sensor, run_key
from resources.exchange import CandleSourceResource
from tests.helpers.live import HOUR, LIVE_START, live_folder

PAUSE = 30  # candles closed while the sensor was off: more than two ticks' worth


@pytest.fixture()
def sensor_on_replay(tmp_path, sample_frames):
    folder = live_folder(tmp_path, sample_frames, PAUSE + 2)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START + HOUR + 60_000, speed=1.0))
    with ReplayServer(exchange) as server:
        source = CandleSourceResource(source="ccxt", api_url=server.url, retry_attempts=1)

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(cursor=cursor, resources={"candle_source": source})
            return new_candle_sensor(context)

        yield exchange, tick


def _keys(result: dg.SensorResult) -> list[str]:
    return [r.run_key for r in result.run_requests or []]


def test_after_a_pause_it_catches_up_every_candle_in_bounded_ticks(sensor_on_replay) -> None:
    exchange, tick = sensor_on_replay
    first = tick(None)  # the first tick starts at the newest closed candle
    assert _keys(first) == [run_key(m, "1h", LIVE_START) for m in SYMBOLS_BY_MARKET_ID]
    cursor = first.cursor
    exchange.clock.set(LIVE_START + (PAUSE + 1) * HOUR + 60_000, 1.0)  # 30 more candles closed
    asked: dict[str, list[int]] = {m: [] for m in SYMBOLS_BY_MARKET_ID}
    ticks = 0
    while True:
        result = tick(cursor)
        keys = _keys(result)
        if not keys:
            assert "no new closed" in result.skip_reason.skip_message
            break
        ticks += 1
        for market in SYMBOLS_BY_MARKET_ID:
            mine = [int(k.rsplit(":", 1)[1]) for k in keys if f":{market}:" in k]
            assert len(mine) <= MAX_CANDLES_PER_TICK
            asked[market] += mine
        cursor = result.cursor
    expected = [LIVE_START + k * HOUR for k in range(1, PAUSE + 1)]
    assert all(candles == expected for candles in asked.values())  # every one, in order, once
    assert ticks == -(-PAUSE // MAX_CANDLES_PER_TICK)


def test_a_cursor_restored_from_an_older_save_asks_again_for_what_followed(
    sensor_on_replay,
) -> None:
    """Run keys, not the cursor, stop the repeats: the sensor asks for every candle after
    the restored cursor again, under the same keys it used the first time."""
    exchange, tick = sensor_on_replay
    old = tick(None).cursor
    exchange.clock.set(LIVE_START + 4 * HOUR + 60_000, 1.0)
    first_time = tick(old)
    restored = tick(old)  # the newer cursor was lost; the older save came back
    assert _keys(restored) == _keys(first_time) and len(_keys(first_time)) == 3 * len(
        SYMBOLS_BY_MARKET_ID
    )
    assert json.loads(restored.cursor) == json.loads(first_time.cursor)
