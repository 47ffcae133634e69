"""Ingestion through the real ccxt client over HTTP against the replay exchange."""

import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.ingest import ingest_partition
from pipeline.data.sources import open_source
from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.markets import UnknownMarketError
from pipeline.exchange.retry import ExchangeSourceError, RetryPolicy
from pipeline.replay.clock import ReplayClock
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.candles import load_candles, summary
from tests.helpers.candles import independent

SYM = "BTC/USDT:USDT"
FAST_RETRY = RetryPolicy(attempts=4, backoff_s=0.01)


def source_for(server: ReplayServer, retry: RetryPolicy = FAST_RETRY, timeout_ms: int = 10_000):
    return open_source("ccxt", "binanceusdm", server.url, retry=retry, timeout_ms=timeout_ms)


@pytest.fixture(scope="module")
def full_replay(sample_dir: Path):
    with ReplayServer(ReplayExchange(sample_dir)) as server:
        yield server


@pytest.fixture()
def small_replay(small_dir: Path):
    with ReplayServer(ReplayExchange(small_dir)) as server:
        yield server


@pytest.mark.slow
def test_btc_sample_lands_whole_and_twice_adds_nothing(db, full_replay, sample_frames) -> None:
    source = source_for(full_replay)
    since = parse_date_ms("2019-09-01")
    got = {tf: ingest_partition(db, source, SYM, tf, since) for tf in ("1h", "4h", "1d")}
    assert {tf: r.rows_added for tf, r in got.items()} == {"1h": 27952, "4h": 6988, "1d": 1164}
    assert all(r.gaps == 0 for r in got.values())
    hours = sample_frames["BTCUSDT"]
    with db.connection() as conn:
        stored = {tf: load_candles(conn, "binanceusdm", SYM, tf) for tf in got}
    assert (stored["1h"].to_numpy() == hours.to_numpy()).all()
    for tf, rule, n in (("4h", "4h", 4), ("1d", "1D", 24)):
        expected = independent(hours, rule, n)
        assert (stored[tf]["timestamp"].to_numpy() == expected["timestamp"].to_numpy()).all()
        np.testing.assert_allclose(
            stored[tf][["open", "high", "low", "close", "volume"]].to_numpy(),
            expected[["open", "high", "low", "close", "volume"]].to_numpy(),
            rtol=1e-12,
        )
    again = [ingest_partition(db, source, SYM, tf, since).rows_added for tf in got]
    assert again == [0, 0, 0]


def test_open_candle_is_never_stored(db, small_dir: Path) -> None:
    clock = ReplayClock(parse_date_ms("2021-01-10T10:30:00Z"))
    with ReplayServer(ReplayExchange(small_dir, clock)) as server:
        source = source_for(server)
        four = ingest_partition(db, source, SYM, "4h", parse_date_ms("2021-01-01"))
        hour = ingest_partition(db, source, SYM, "1h", parse_date_ms("2021-01-01"))
        assert four.last_ms == parse_date_ms("2021-01-10T04:00Z")
        assert hour.last_ms == parse_date_ms("2021-01-10T09:00Z")
        clock.set(parse_date_ms("2021-01-10T12:00:00Z"))  # the 08:00 4h candle closes
        later = ingest_partition(db, source, SYM, "4h", parse_date_ms("2021-01-01"))
        assert later.rows_added == 1
        assert later.last_ms == parse_date_ms("2021-01-10T08:00Z")


@pytest.mark.parametrize("spec", ["429:3", "500:3", "429:0.3"])
def test_transient_faults_are_survived(db, small_replay: ReplayServer, spec: str) -> None:
    small_replay.exchange.set_faults(FaultPlan.parse(spec, seed=3))
    source = source_for(small_replay, RetryPolicy(attempts=6, backoff_s=0.01))
    result = ingest_partition(db, source, SYM, "1h", parse_date_ms("2021-01-01"))
    assert result.rows_added == 720
    assert small_replay.exchange.faults_served >= (3 if ":3" in spec else 1)


def test_a_request_that_times_out_is_retried(db, small_replay: ReplayServer) -> None:
    small_replay.exchange.set_faults(FaultPlan.parse("timeout:1", delay_s=2.0))
    source = source_for(small_replay, timeout_ms=300)
    result = ingest_partition(db, source, SYM, "1d", parse_date_ms("2021-01-01"))
    assert result.rows_added == 30
    assert small_replay.exchange.faults_served == 1


def test_an_exchange_failing_forever_fails_after_the_bound(db, small_replay: ReplayServer) -> None:
    small_replay.exchange.set_faults(FaultPlan.parse("500:1.0"))
    source = source_for(small_replay, RetryPolicy(attempts=3, backoff_s=0.05))
    started = time.monotonic()
    with pytest.raises(ExchangeSourceError) as caught:
        ingest_partition(db, source, SYM, "4h", parse_date_ms("2021-01-01"))
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "gave up after 3 attempts" in message
    assert "internal error" in message.lower()
    assert small_replay.exchange.faults_served == 3
    with db.connection() as conn:
        assert summary(conn, "binanceusdm", SYM, "4h").rows == 0


def test_unknown_market_fails_at_once(db, small_replay: ReplayServer) -> None:
    source = source_for(small_replay)
    with pytest.raises(UnknownMarketError, match="SOL/USDT:USDT"):
        ingest_partition(db, source, "SOL/USDT:USDT", "1h", 0)


def test_exchange_error_names_market_timeframe_and_exchange_words(small_replay) -> None:
    """Anything but a transient error fails on the first answer, with the exchange's words."""
    source = source_for(small_replay)
    source.check_market(SYM)
    small_replay.exchange.data.base.pop("BTCUSDT")  # listed at load, refused on klines
    with pytest.raises(UnknownMarketError, match=r"binanceusdm BTC/USDT:USDT 1h.*Invalid symbol"):
        source.fetch(SYM, "1h", parse_date_ms("2021-01-01"))
    assert small_replay.exchange.requests["/fapi/v1/klines"] == 1
