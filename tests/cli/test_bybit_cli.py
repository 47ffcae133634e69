"""`SIGNALS_EXCHANGE=bybit` as a user runs it: real `signals` processes ingest candles and
funding through ccxt's bybit client from the replay exchange's Bybit v5 dialect."""

import json
from pathlib import Path

from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from tests.cli.test_cli import run

T0 = 1609459200000  # 2021-01-01: the small folder's first candle; it holds 30 days
END = T0 + 30 * 86_400_000


def test_ingest_and_funding_speak_bybit(database_url: str, small_dir: Path) -> None:
    env = {"SIGNALS_DATABASE_URL": database_url, "SIGNALS_EXCHANGE": "bybit"}
    with ReplayServer(ReplayExchange(small_dir, ReplayClock(END, speed=1e-9))) as server:
        candles = ["ingest", "--source", "ccxt", "--api-url", server.url, "--json"]
        candles += [
            "--markets",
            "BTCUSDT,ETHUSDT",
            "--timeframes",
            "1h,1d",
            "--since",
            "2021-01-01",
        ]
        out = run(candles, env)
        assert out.returncode == 0, out.stderr
        parts = json.loads(out.stdout)["partitions"]
        assert [(p["market"], p["timeframe"], p["rows_added"], p["gaps"]) for p in parts] == [
            ("BTC/USDT:USDT", "1h", 720, 0),
            ("BTC/USDT:USDT", "1d", 30, 0),
            ("ETH/USDT:USDT", "1h", 720, 0),
            ("ETH/USDT:USDT", "1d", 30, 0),
        ]
        funding = ["ingest-funding", "--api-url", server.url, "--markets", "BTCUSDT", "--json"]
        out = run([*funding, "--start", "2021-01-01", "--end", "2021-01-02"], env)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["exchange"] == "bybit"
        assert [(m["rows_added"], m["first"], m["last"]) for m in summary["markets"]] == [
            (4, "2021-01-01T00:00:00Z", "2021-01-02T00:00:00Z")  # the stand-in every 8 h
        ]
        requests = server.exchange.stats()["requests"]
    assert requests["/v5/market/kline"] >= 4 and requests["/v5/market/funding/history"] >= 1
    assert not any(path.startswith("/fapi/") for path in requests)
