"""The replay exchange's network faults (reset, reset after the work, truncated body, a 200
that is not JSON) as a client sees them over real HTTP, and ccxt's reading of each: an error
worth another try, never an answer read wrong."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import ccxt
import pytest

from pipeline.data.csv_source import CandleFolder
from pipeline.data.ingest import ingest_partition
from pipeline.data.sources import open_source
from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.client import UnparsableAnswer, make_exchange
from pipeline.exchange.retry import RetryPolicy, retryable
from pipeline.replay.faults import CARRIED_OUT, FAULT_KINDS, MALFORMED_BODY, FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.candles import load_candles

SYM = "BTC/USDT:USDT"
NEW_KINDS = ("reset", "reset_after", "truncated", "malformed_json")
KLINES = "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=3&startTime=1609459200000"


@pytest.fixture()
def replay(small_dir: Path):
    with ReplayServer(ReplayExchange(small_dir)) as server:
        yield server


def raw_get(server: ReplayServer, path: str) -> tuple[int, dict, bytes]:
    """One GET with the standard library: (status, headers, body read as far as it goes)."""
    host, port = urlsplit(server.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_every_kind_is_known_and_carried_out_kinds_are_named() -> None:
    assert set(NEW_KINDS) <= set(FAULT_KINDS)
    assert set(CARRIED_OUT) == {"lost", "reset_after", "truncated", "malformed_json"}
    with pytest.raises(ValueError, match="fault kind"):
        FaultPlan(kind="garbled")


@pytest.mark.parametrize("kind", ["reset", "reset_after"])
def test_a_reset_closes_the_connection_without_an_answer(replay, kind) -> None:
    replay.exchange.set_faults(FaultPlan.parse(f"{kind}:1"))
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        raw_get(replay, KLINES)
    assert raw_get(replay, KLINES)[0] == 200  # the next request is answered
    assert replay.exchange.faults_served == 1


def test_a_truncated_answer_announces_more_than_it_sends(replay) -> None:
    whole = raw_get(replay, KLINES)[2]
    replay.exchange.set_faults(FaultPlan.parse("truncated:1"))
    with pytest.raises(http.client.IncompleteRead) as caught:
        raw_get(replay, KLINES)
    assert caught.value.partial == whole[: len(whole) // 2]
    assert caught.value.expected == len(whole) - len(whole) // 2


def test_a_malformed_answer_is_a_200_that_is_not_json(replay) -> None:
    replay.exchange.set_faults(FaultPlan.parse("malformed_json:1"))
    status, headers, body = raw_get(replay, KLINES)
    assert (status, body) == (200, MALFORMED_BODY)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_ccxt_raises_a_retryable_error_never_a_wrong_answer(replay, kind) -> None:
    client = make_exchange("binanceusdm", replay.url, 2000)
    client.enableRateLimit = False
    client.load_markets()
    since = parse_date_ms("2021-01-01")
    expected = client.fetch_ohlcv(SYM, "1h", since, 3)
    replay.exchange.set_faults(FaultPlan.parse(f"{kind}:1", path="/fapi/v1/klines"))
    with pytest.raises(retryable()) as caught:
        client.fetch_ohlcv(SYM, "1h", since, 3)
    if kind == "malformed_json":  # without the guard ccxt read it as "no candles"
        assert isinstance(caught.value, UnparsableAnswer)
    else:
        assert isinstance(caught.value, ccxt.NetworkError)
    assert client.fetch_ohlcv(SYM, "1h", since, 3) == expected


def test_an_ingest_through_every_new_kind_lands_the_source_exactly(db, replay, small_dir) -> None:
    source = open_source(
        "ccxt", "binanceusdm", replay.url, retry=RetryPolicy(attempts=6, backoff_s=0.01)
    )
    since = parse_date_ms("2021-01-01")
    for timeframe in ("1h", "4h"):
        for kind in NEW_KINDS:  # each kind on a candle page, then the ingest again
            replay.exchange.set_faults(FaultPlan.parse(f"{kind}:1", path="/fapi/v1/klines"))
            ingest_partition(db, source, SYM, timeframe, since)
    assert replay.exchange.faults_served == 2 * len(NEW_KINDS)
    hours = CandleFolder(small_dir).read(SYM)
    with db.connection() as conn:
        stored = load_candles(conn, "binanceusdm", SYM, "1h")
        four = load_candles(conn, "binanceusdm", SYM, "4h")
    assert len(hours) == 720 and (stored.to_numpy() == hours.to_numpy()).all()
    assert len(four) == 180


def test_a_plan_can_let_the_first_matching_requests_through() -> None:
    plan = FaultPlan(kind="500", count=1, skip=2, path="/fapi/v1/order", method="POST")
    draws = [plan.draw("POST", "/fapi/v1/order") for _ in range(4)]
    assert plan.draw("GET", "/fapi/v1/order") is None
    assert draws == [None, None, "500", None]


def test_a_mixed_plan_draws_each_kind_and_counts_what_it_served() -> None:
    plan = FaultPlan(kinds=FAULT_KINDS, share=0.5, seed=4)
    served = [plan.draw("GET", "/fapi/v1/klines") for _ in range(400)]
    faults = [kind for kind in served if kind]
    assert set(faults[: len(FAULT_KINDS)]) == set(FAULT_KINDS)  # each once before any twice
    assert plan.drawn == {k: faults.count(k) for k in FAULT_KINDS}
    with pytest.raises(ValueError, match="fault kind"):
        FaultPlan(kinds=("500", "garbled"))


def test_a_malformed_page_mid_ingest_is_retried_not_read_as_the_end(db, replay, small_dir) -> None:
    """Without the guard ccxt read the body as an empty page and the ingest went on past it:
    a 200-hour hole (520 of 720 rows) and no error."""
    source = open_source(
        "ccxt", "binanceusdm", replay.url, retry=RetryPolicy(attempts=3, backoff_s=0.01)
    )
    source.page_limit = 200
    replay.exchange.set_faults(
        FaultPlan(kind="malformed_json", count=1, skip=2, path="/fapi/v1/klines")
    )
    result = ingest_partition(db, source, SYM, "1h", parse_date_ms("2021-01-01"))
    assert replay.exchange.faults_served == 1
    assert result.rows_added == 720
