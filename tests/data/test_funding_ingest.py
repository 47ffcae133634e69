"""Funding history through the real ccxt client over HTTP against the replay exchange."""

from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.csv_source import CandleFolder
from pipeline.data.funding import (
    FundingHistoryError,
    ingest_funding,
    open_funding_source,
    validate_funding,
)
from pipeline.exchange.markets import UnknownMarketError
from pipeline.exchange.retry import ExchangeSourceError, RetryPolicy
from pipeline.replay.clock import ReplayClock
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.funding import load_funding

EX, BTC, ETH = "binanceusdm", "BTC/USDT:USDT", "ETH/USDT:USDT"
PATH = "/fapi/v1/fundingRate"
H8 = 8 * 3_600_000
T0 = 1609459200000  # 2021-01-01T00:00Z, the small folder's first candle
END = T0 + 30 * 86_400_000 - 1  # its last candle opens at T0 + 30 days − 1h
FAST = RetryPolicy(attempts=3, backoff_s=0.01)
# Recorded BTC settlements as Binance stamps them (a few ms late), with hand-picked rates.
RAW = [
    (T0 + 4, 0.0001),
    (T0 + H8 + 3, 0.00025),
    (T0 + 2 * H8, -0.00005),
    (T0 + 3 * H8 + 7, 0.0003),
    (T0 + 4 * H8 + 1, 0.0001),
    (T0 + 5 * H8 + 2, 0.00012),
    (T0 + 6 * H8, 0.00008),
    (T0 + 7 * H8 + 499, 0.0001),
    (T0 + 8 * H8 + 9, -0.0002),
    (T0 + 9 * H8 + 501, 0.00015),  # rounds up to the next second
]
STORED = [(T0 + i * H8, rate) for i, (_, rate) in enumerate(RAW[:9])] + [
    (T0 + 9 * H8 + 1000, 0.00015)
]


def write_funding(folder: Path, market: str, rows: list[tuple[int, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["funding_ms", "rate"])
    frame.to_csv(folder / f"{market}_funding.csv", index=False)


@pytest.fixture()
def funding_dir(small_dir: Path) -> Path:
    write_funding(small_dir, "BTCUSDT", RAW)
    return small_dir


@pytest.fixture()
def replay(funding_dir: Path):
    with ReplayServer(ReplayExchange(funding_dir)) as server:
        yield server


def source_for(server: ReplayServer, page_limit: int = 3, retry: RetryPolicy = FAST):
    return open_funding_source(EX, server.url, retry, page_limit=page_limit)


def stored(db, market: str = BTC) -> list[tuple[int, float]]:
    with db.connection() as conn:
        return load_funding(conn, EX, market)


def test_funding_files_are_not_markets(funding_dir: Path) -> None:
    assert CandleFolder(funding_dir).market_ids() == ["BTCUSDT", "ETHUSDT"]


def test_pages_through_the_history_and_twice_adds_nothing(db, replay: ReplayServer) -> None:
    source = source_for(replay, page_limit=3)
    assert ingest_funding(db, source, BTC, T0, END) == 10
    assert replay.exchange.requests[PATH] == 4  # 3 + 3 + 3 + 1: the short page ends it
    assert stored(db) == STORED
    assert ingest_funding(db, source, BTC, T0, END) == 0
    assert replay.exchange.requests[PATH] == 5  # one empty page after the newest row
    assert stored(db) == STORED


def test_resumes_after_the_newest_stored_row(db, replay: ReplayServer) -> None:
    source = source_for(replay, page_limit=3)
    assert ingest_funding(db, source, BTC, T0, T0 + 3 * H8 + 1000) == 4
    assert stored(db) == STORED[:4]
    # An earlier start does not matter once rows are stored: the history grows forward.
    assert ingest_funding(db, source, BTC, T0 - 10 * H8, END) == 6
    assert stored(db) == STORED


def test_a_market_without_a_file_gets_the_constant_at_every_settlement(db, funding_dir) -> None:
    clock = ReplayClock(T0 + 2 * 86_400_000 + 9 * 3_600_000, speed=1e-9)  # 2021-01-03T09:00
    with ReplayServer(ReplayExchange(funding_dir, clock)) as server:
        source = source_for(server, page_limit=1000)
        assert ingest_funding(db, source, ETH, T0, END) == 8  # settlements after now hidden
        clock.set(None)
        assert ingest_funding(db, source, ETH, T0, END) == 82
        latest = source.exchange.fetch_funding_rate_history(ETH, limit=2)
    assert stored(db, ETH) == [(T0 + i * H8, 0.0001) for i in range(90)]
    assert [(r["timestamp"], r["fundingRate"]) for r in latest] == [
        (T0 + 88 * H8, 0.0001),
        (T0 + 89 * H8, 0.0001),
    ]
    assert latest[0]["info"]["markPrice"] != ""


@pytest.mark.parametrize("spec", ["429:2", "500:2"])
def test_transient_faults_on_the_funding_path_are_retried(db, replay, spec: str) -> None:
    replay.exchange.set_faults(FaultPlan.parse(spec, path=PATH))
    assert ingest_funding(db, source_for(replay), BTC, T0, END) == 10
    assert replay.exchange.faults_served == 2
    assert replay.exchange.requests[PATH] == 6
    assert stored(db) == STORED


def test_an_endpoint_failing_forever_gives_up_at_the_bound(db, replay: ReplayServer) -> None:
    replay.exchange.set_faults(FaultPlan.parse("500:1.0", path=PATH))
    with pytest.raises(ExchangeSourceError, match="BTC/USDT:USDT funding: gave up after 3"):
        ingest_funding(db, source_for(replay), BTC, T0, END)
    assert replay.exchange.faults_served == 3
    assert stored(db) == []


def test_unknown_market_fails_before_any_funding_request(db, replay: ReplayServer) -> None:
    with pytest.raises(UnknownMarketError, match="unknown market SOL/USDT:USDT on binanceusdm"):
        ingest_funding(db, source_for(replay), "SOL/USDT:USDT", T0, END)
    assert PATH not in replay.exchange.requests


def test_an_absurd_rate_is_refused_and_nothing_is_written(db, funding_dir: Path) -> None:
    write_funding(funding_dir, "ETHUSDT", [(T0, 0.0001), (T0 + H8, 0.06)])
    refused = pytest.raises(FundingHistoryError, match=r"0\.06 at 2021-01-01T08:00:00Z exceeds")
    with ReplayServer(ReplayExchange(funding_dir)) as server, refused:
        ingest_funding(db, source_for(server), ETH, T0, END)
    assert stored(db, ETH) == []


def test_validation_rounds_and_refuses_repeats_and_disorder() -> None:
    assert validate_funding([(T0 + 499, 0.0001), (T0 + H8 + 500, 0.0002)], "x") == [
        (T0, 0.0001),
        (T0 + H8 + 1000, 0.0002),
    ]
    with pytest.raises(FundingHistoryError, match="repeats 2021-01-01T00:00:00Z"):
        validate_funding([(T0 + 4, 0.0001), (T0 + 300, 0.0001)], "x")
    with pytest.raises(FundingHistoryError, match="comes before"):
        validate_funding([(T0 + H8, 0.0001), (T0, 0.0001)], "x")
    with pytest.raises(FundingHistoryError, match="is nan"):
        validate_funding([(T0, float("nan"))], "x")
    with pytest.raises(FundingHistoryError, match="is None"):
        validate_funding([(T0, None)], "x")
