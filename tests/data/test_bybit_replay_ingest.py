"""Ingestion from Bybit through the real ccxt bybit client, over HTTP, against the replay
exchange's v5 dialect: candles and funding land exactly as recorded, faults are survived or
fail at the bound, and nothing is stored twice."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.funding import ingest_funding, open_funding_source
from pipeline.data.ingest import ingest_partition
from pipeline.data.sources import open_source
from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.markets import UnknownMarketError
from pipeline.exchange.retry import ExchangeSourceError, RetryPolicy
from pipeline.replay.clock import ReplayClock
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.candles import load_candles, summary
from pipeline.store.funding import load_funding
from tests.helpers.candles import independent

EX, SYM = "bybit", "BTC/USDT:USDT"
KLINES, FUNDING = "/v5/market/kline", "/v5/market/funding/history"
T0 = parse_date_ms("2021-01-01")  # the small folder's first candle; it holds 30 days
END = T0 + 30 * 86_400_000  # when its last candle closes
H8 = 8 * 3_600_000
FAST = RetryPolicy(attempts=4, backoff_s=0.01)


def source_for(server: ReplayServer, retry: RetryPolicy = FAST, timeout_ms: int = 10_000):
    """Pages of 200 candles, so that 30 days of hours take several (Bybit's most is 1000)."""
    source = open_source("ccxt", EX, server.url, retry=retry, timeout_ms=timeout_ms)
    source.page_limit = 200
    return source


@pytest.fixture()
def replay(small_dir: Path):
    """The clock where the folder ends: Bybit is paged in windows up to now, so a clock years
    later would cost dozens of empty windows."""
    with ReplayServer(ReplayExchange(small_dir, ReplayClock(END, speed=1e-9))) as server:
        yield server


def test_candles_land_exactly_and_twice_adds_nothing(db, replay, small_dir: Path) -> None:
    source = source_for(replay)
    got = {tf: ingest_partition(db, source, SYM, tf, T0) for tf in ("1h", "4h", "1d")}
    assert {tf: r.rows_added for tf, r in got.items()} == {"1h": 720, "4h": 180, "1d": 30}
    assert all(r.gaps == 0 for r in got.values())
    hours = pd.read_csv(small_dir / "BTCUSDT.csv.gz")
    with db.connection() as conn:
        stored = {tf: load_candles(conn, EX, SYM, tf) for tf in got}
    assert (stored["1h"].to_numpy() == hours.to_numpy()).all()
    for tf, rule, n in (("4h", "4h", 4), ("1d", "1D", 24)):
        expected = independent(hours, rule, n)
        assert (stored[tf]["timestamp"].to_numpy() == expected["timestamp"].to_numpy()).all()
        np.testing.assert_allclose(
            stored[tf][["open", "high", "low", "close", "volume"]].to_numpy(),
            expected[["open", "high", "low", "close", "volume"]].to_numpy(),
            rtol=1e-12,
        )
    assert [ingest_partition(db, source, SYM, tf, T0).rows_added for tf in got] == [0, 0, 0]
    # 1h: 4 windows of 199 open times; 4h: 1; 1d: 1; the second ingest has nothing to ask.
    assert replay.exchange.requests[KLINES] == 4 + 1 + 1


def test_open_candle_is_never_stored(db, small_dir: Path) -> None:
    clock = ReplayClock(parse_date_ms("2021-01-10T10:30:00Z"))
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        source = source_for(server)
        four = ingest_partition(db, source, SYM, "4h", T0)
        hour = ingest_partition(db, source, SYM, "1h", T0)
        assert four.last_ms == parse_date_ms("2021-01-10T04:00Z")
        assert hour.last_ms == parse_date_ms("2021-01-10T09:00Z")
        clock.set(parse_date_ms("2021-01-10T12:00:00Z"))  # the 08:00 4h candle closes
        later = ingest_partition(db, source, SYM, "4h", T0)
        assert (later.rows_added, later.last_ms) == (1, parse_date_ms("2021-01-10T08:00Z"))


@pytest.mark.parametrize("spec", ["429:3", "500:3", "malformed_json:2", "reset:2"])
def test_transient_faults_are_survived(db, replay, spec: str) -> None:
    """Bybit's rate limit (retCode 10006) and system error (10016) are retried like a network
    fault; the candles land whole."""
    replay.exchange.set_faults(FaultPlan.parse(spec, path=KLINES))
    result = ingest_partition(db, source_for(replay), SYM, "1h", T0)
    assert result.rows_added == 720 and result.gaps == 0
    assert replay.exchange.faults_served == int(spec.split(":")[1])


def test_an_exchange_failing_forever_fails_after_the_bound(db, replay) -> None:
    replay.exchange.set_faults(FaultPlan.parse("500:1.0"))
    started = time.monotonic()
    with pytest.raises(ExchangeSourceError, match="gave up after 3 attempts") as caught:
        ingest_partition(db, source_for(replay, RetryPolicy(3, 0.05)), SYM, "4h", T0)
    assert time.monotonic() - started < 10
    assert "System error" in str(caught.value)
    assert replay.exchange.faults_served == 3
    with db.connection() as conn:
        assert summary(conn, EX, SYM, "4h").rows == 0


def test_unknown_market_fails_at_once(db, replay) -> None:
    with pytest.raises(UnknownMarketError, match="SOL/USDT:USDT on bybit"):
        ingest_partition(db, source_for(replay), "SOL/USDT:USDT", "1h", 0)
    assert KLINES not in replay.exchange.requests


def test_funding_pages_through_bybit_windows_and_twice_adds_nothing(db, replay) -> None:
    """No file beside the candles: the replay's stand-in 0.01 % every 8 h, served newest first
    in windows of at most 200 rows; stored ascending, once."""
    source = open_funding_source(EX, replay.url, FAST, page_limit=50)
    assert ingest_funding(db, source, SYM, T0, END - 1) == 90
    assert replay.exchange.requests[FUNDING] == -(-30 * 24 // 50)  # 50-hour windows tile it
    assert ingest_funding(db, source, SYM, T0, END - 1) == 0
    with db.connection() as conn:
        assert load_funding(conn, EX, SYM) == [(T0 + i * H8, 0.0001) for i in range(90)]


def test_a_malformed_kline_page_is_refused_and_nothing_is_stored(db, replay) -> None:
    """A data fault through Bybit's dialect (`POST /_replay/klines`): raw rows in Bybit's shape
    served as injected, one price unreadable; the ingest refuses it by name, stores nothing."""
    from pipeline.data.schema import CandleValidationError

    rows = [
        [str(T0 + i * 3_600_000), "100.0", "101.0", "99.0", "100.5", "3.0", "300.0"]
        for i in range(6)
    ]
    rows[3][4] = "abc"  # the close of the fourth candle
    replay.exchange.market.set_klines("BTCUSDT", rows)
    replay.exchange.clock.set(T0 + 6 * 3_600_000, 1e-9)
    with pytest.raises(CandleValidationError, match="values_readable") as caught:
        ingest_partition(db, source_for(replay), SYM, "1h", T0)
    assert "BTC/USDT:USDT 1h" in str(caught.value) and "'abc'" in str(caught.value)
    with db.connection() as conn:
        assert summary(conn, EX, SYM, "1h").rows == 0
    replay.exchange.market.set_klines("BTCUSDT", None)
    assert ingest_partition(db, source_for(replay), SYM, "1h", T0).rows_added == 6
