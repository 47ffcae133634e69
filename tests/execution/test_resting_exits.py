"""Resting exits at both brokers: a reduce-only stop and take-profit rest until a closed 1h
candle touches them, then fill by the backtest's rule; placing is idempotent, a cancel that
comes too late reports the fill, and an exit with nothing left to reduce expires.

The paper broker reads candles and the clock from the replay exchange through ccxt; the ccxt
broker trades the replay exchange's own account (Binance's algo order API). The expected
trigger is read straight from the sample CSV, not from the code under test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.client import make_exchange
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    FILLED,
    OPEN,
    REJECTED,
    SELL,
    ExitOrder,
    OrderRequest,
)
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.execution.paper import PaperBroker
from pipeline.execution.prices import ExchangePriceFeed
from tests.helpers.replay import account, frozen_replay

KEY, SECRET = "exits-test-key", "exits-test-secret"
BTC = "BTC/USDT:USDT"
T0 = "2023-03-01T10:00:00Z"
HOUR = 3_600_000
FEE = 0.0005


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, parse_date_ms(T0), KEY, SECRET) as server:
        yield server


@pytest.fixture(params=["paper", "ccxt"])
def broker(request, replay, db):
    if request.param == "ccxt":
        env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
        fast = RetryPolicy(attempts=3, backoff_s=0.01)
        made = CcxtBroker.from_env(api_url=replay.url, timeout_ms=1000, retry=fast, environ=env)
        made.exchange.enableRateLimit = False
        return made
    public = make_exchange("binanceusdm", replay.url, 1000)
    public.enableRateLimit = False
    return PaperBroker(db, ExchangePriceFeed(public), account="paper-exits", fee=FEE)


def _hours(sample_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(sample_dir / "BTCUSDT.csv.gz")
    return frame[frame["timestamp"] >= parse_date_ms(T0)].reset_index(drop=True)


def _first_touch(hours: pd.DataFrame, stop: float, take: float) -> tuple[int, str, float]:
    """A long's exits, read off the CSV: the first hour touching one, the stop first."""
    for row in hours.itertuples():
        if row.low <= stop:
            return int(row.timestamp), "stop", min(row.open, stop)
        if row.high >= take:
            return int(row.timestamp), "take_profit", take
    raise AssertionError("no exit touched in the sample")


def test_exits_rest_then_fill_by_the_backtests_rule(broker, replay, sample_dir) -> None:
    entry = broker.place(OrderRequest("entry-1", BTC, BUY, 0.01))
    assert entry.status == FILLED
    price = float(entry.average_price)
    stop, take = round(price * 0.995, 1), round(price * 1.005, 1)  # on the 0.1 tick
    stop_order = ExitOrder("stop-1", BTC, SELL, 0.01, "stop", stop)
    take_order = ExitOrder("take-1", BTC, SELL, 0.01, "take_profit", take)
    assert broker.place_exit(stop_order).status == OPEN
    assert broker.place_exit(take_order).status == OPEN
    assert broker.place_exit(stop_order).status == OPEN  # the same order: not placed twice
    resting = broker.open_orders(BTC)
    assert sorted(o.client_order_id for o in resting) == ["stop-1", "take-1"]
    assert all(o.quantity == pytest.approx(0.01) and o.side == SELL for o in resting)

    hour, kind, fill = _first_touch(_hours(sample_dir), stop, take)
    replay.exchange.clock.set(hour + HOUR - 1, 1e-9)  # not closed yet: nothing triggers
    assert broker.lookup(BTC, f"{kind.split('_')[0]}-1").status == OPEN
    replay.exchange.clock.set(hour + HOUR + 60_000, 1e-9)
    first = "stop-1" if kind == "stop" else "take-1"
    other = "take-1" if kind == "stop" else "stop-1"
    done = broker.lookup(BTC, first)
    assert (done.status, done.filled, done.average_price) == (FILLED, 0.01, fill)
    assert done.fee == pytest.approx(FEE * 0.01 * fill)
    assert hour <= done.timestamp_ms < hour + HOUR  # inside the trigger candle
    assert broker.positions() == {}
    assert broker.cancel_exit(BTC, first).status == FILLED  # too late: it says what happened
    sibling = broker.lookup(BTC, other)
    if sibling.status == OPEN:
        assert broker.cancel_exit(BTC, other).status == CANCELLED
    assert broker.open_orders(BTC) == []
    assert broker.cancel_exit(BTC, "never-placed").status == REJECTED


def test_an_exit_with_nothing_left_to_reduce_expires(broker, replay, sample_dir) -> None:
    entry = broker.place(OrderRequest("entry-2", BTC, SELL, 0.01))
    price = float(entry.average_price)
    stop = round(price * 1.002, 1)  # a short's stop, above
    assert broker.place_exit(ExitOrder("stop-2", BTC, BUY, 0.01, "stop", stop)).status == OPEN
    closed = broker.place(OrderRequest("close-2", BTC, BUY, 0.01, reduce_only=True))
    assert closed.status == FILLED and broker.positions() == {}
    hours = _hours(sample_dir)
    touched = int(hours.loc[hours["high"] >= stop, "timestamp"].iloc[0])
    replay.exchange.clock.set(touched + HOUR + 60_000, 1e-9)
    assert broker.lookup(BTC, "stop-2").status == CANCELLED  # expired: nothing bought
    assert broker.positions() == {} and broker.open_orders(BTC) == []


def test_the_exchange_refuses_a_stop_already_through_the_price(replay) -> None:
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    broker = CcxtBroker.from_env(api_url=replay.url, timeout_ms=1000, environ=env)
    broker.exchange.enableRateLimit = False
    price = broker.place(OrderRequest("entry-3", BTC, BUY, 0.01)).average_price
    above = round(float(price) * 1.01, 1)  # a long's stop above the price: triggers at once
    refused = broker.place_exit(ExitOrder("stop-3", BTC, SELL, 0.01, "stop", above))
    assert refused.status == REJECTED and "immediately trigger" in (refused.reason or "")
    assert account(replay)["open_algo_orders"] == 0
