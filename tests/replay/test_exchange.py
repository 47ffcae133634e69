"""The replay exchange speaks enough of Binance USDⓈ-M for ccxt, over real HTTP."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.replay.clock import ReplayClock
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer

H = 3_600_000


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture()
def replay(small_dir: Path):
    clock = ReplayClock(parse_date_ms("2021-01-10T10:30:00Z"))
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        yield server


def test_exchange_info_lists_the_folder_markets(replay: ReplayServer) -> None:
    status, info = get(f"{replay.url}/fapi/v1/exchangeInfo")
    assert status == 200
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert all(s["contractType"] == "PERPETUAL" for s in info["symbols"])


def test_time_follows_the_replay_clock(replay: ReplayServer) -> None:
    _, body = get(f"{replay.url}/fapi/v1/time")
    assert abs(body["serverTime"] - parse_date_ms("2021-01-10T10:30:00Z")) < 5_000


def test_klines_hide_candles_not_yet_closed(replay: ReplayServer) -> None:
    _, hours = get(f"{replay.url}/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=3")
    assert [k[0] for k in hours] == [parse_date_ms(f"2021-01-10T0{h}:00Z") for h in (7, 8, 9)]
    _, fours = get(f"{replay.url}/fapi/v1/klines?symbol=BTCUSDT&interval=4h&limit=2")
    # At 10:30 the 08:00 4h candle is still open.
    assert [k[0] for k in fours] == [
        parse_date_ms(d) for d in ("2021-01-10T00:00Z", "2021-01-10T04:00Z")
    ]
    assert fours[-1][6] == parse_date_ms("2021-01-10T08:00Z") - 1  # close time


def test_klines_page_by_start_end_and_limit(replay: ReplayServer, sample_frames) -> None:
    start = parse_date_ms("2021-01-02")
    _, page = get(
        f"{replay.url}/fapi/v1/klines?symbol=ETHUSDT&interval=1h&startTime={start}&limit=5"
    )
    eth = sample_frames["ETHUSDT"].set_index("timestamp")
    assert [k[0] for k in page] == [start + i * H for i in range(5)]
    assert [float(k[4]) for k in page] == eth.loc[[k[0] for k in page], "close"].tolist()
    _, bounded = get(
        f"{replay.url}/fapi/v1/klines?symbol=ETHUSDT&interval=1h&startTime={start}"
        f"&endTime={start + 2 * H}&limit=5"
    )
    assert len(bounded) == 3


def test_bad_requests_get_binance_errors(replay: ReplayServer) -> None:
    status, body = get(f"{replay.url}/fapi/v1/klines?symbol=DOGEUSDT&interval=1h")
    assert (status, body["code"]) == (400, -1121)
    status, body = get(f"{replay.url}/fapi/v1/klines?symbol=BTCUSDT&interval=7h")
    assert (status, body["code"]) == (400, -1120)
    status, body = get(f"{replay.url}/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=5000")
    assert (status, body["code"]) == (400, -1130)


def test_faults_by_count_then_recovery(replay: ReplayServer) -> None:
    replay.exchange.set_faults(FaultPlan.parse("429:2"))
    assert get(f"{replay.url}/fapi/v1/ping")[0] == 429
    assert get(f"{replay.url}/fapi/v1/ping")[0] == 429
    assert get(f"{replay.url}/fapi/v1/ping")[0] == 200


def test_faults_by_share_are_seeded() -> None:
    plan_a, plan_b = FaultPlan.parse("500:0.3", seed=7), FaultPlan.parse("500:0.3", seed=7)
    seq_a = [plan_a.draw() for _ in range(200)]
    assert seq_a == [plan_b.draw() for _ in range(200)]
    share = seq_a.count("500") / 200
    assert 0.2 < share < 0.4
    with pytest.raises(ValueError, match="fault kind"):
        FaultPlan.parse("503:1")


def test_clock_speed_runs_time_faster() -> None:
    clock = ReplayClock(0, speed=3600.0)
    time.sleep(0.05)
    assert clock.now_ms() >= 0.05 * 3600 * 1000 * 0.9


def test_control_endpoints_set_faults_and_clock(replay: ReplayServer) -> None:
    request = urllib.request.Request(
        f"{replay.url}/_replay/faults", data=b'{"spec": "500:1"}', method="POST"
    )
    urllib.request.urlopen(request, timeout=5).read()
    assert get(f"{replay.url}/fapi/v1/ping")[0] == 500
    assert get(f"{replay.url}/fapi/v1/ping")[0] == 200
    _, stats = get(f"{replay.url}/_replay/stats")
    assert stats["faults_served"] == 1
