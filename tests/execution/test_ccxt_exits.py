"""Resting exits through `CcxtBroker`, over HTTP, against the replay exchange, once with ccxt's
binanceusdm client (Binance's algo orders) and once with its bybit client (Bybit's conditional
orders): placed once, listed as conditional, triggered on a closed candle by the backtest's
rule at the price read here straight from the sample, the other cancelled, nothing left."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import CANCELLED, FILLED, OPEN, ExitOrder, OrderRequest
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.replay.dialects import dialect
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from tests.helpers.replay import account, fresh, frozen_replay

KEY, SECRET = "exit-test-key-2c4d", "exit-test-secret-8f1e"
BTC, H = "BTC/USDT:USDT", 3_600_000
T0 = parse_date_ms("2023-03-01T10:00:00Z")
FEE = 0.0005


@pytest.fixture(scope="module")
def served(sample_dir: Path):
    with frozen_replay(sample_dir, T0, KEY, SECRET) as server:
        yield server


@pytest.fixture(params=["binanceusdm", "bybit"])
def exchange_id(request) -> str:
    return request.param


@pytest.fixture()
def broker(served: ReplayServer, exchange_id: str) -> CcxtBroker:
    fresh(served, T0)
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    broker = CcxtBroker.from_env(
        exchange_id, served.url, 1000, RetryPolicy(attempts=4, backoff_s=0.01), environ=env
    )
    broker.exchange.enableRateLimit = False
    return broker


def first_touch(sample_dir: Path, stop: float, take: float) -> tuple[int, str, float]:
    """Read straight from the CSV: the first closed 1h candle from T0 whose range reaches a
    long's stop (below) or take-profit (above); the stop first when both, at the level or at
    an open that gapped through it; the take-profit at its level."""
    frame = pd.read_csv(sample_dir / "BTCUSDT.csv.gz")
    for row in frame[frame["timestamp"] >= T0].itertuples():
        if row.low <= stop:
            return int(row.timestamp), "stop", min(row.open, stop)
        if row.high >= take:
            return int(row.timestamp), "take_profit", take
    raise AssertionError("no candle touches either level")


def test_a_stop_and_a_take_profit_rest_one_triggers_the_other_is_cancelled(
    broker, served, sample_dir
) -> None:
    entry = broker.place(OrderRequest("entry-1", BTC, "buy", 0.01))
    assert entry.status == FILLED
    stop, take = round(entry.average_price * 0.99, 1), round(entry.average_price * 1.01, 1)
    exits = {
        "stop-1": ExitOrder("stop-1", BTC, "sell", 0.01, "stop", stop),
        "take-1": ExitOrder("take-1", BTC, "sell", 0.01, "take_profit", take),
    }
    for order in exits.values():
        placed = broker.place_exit(order)
        assert (placed.status, placed.filled) == (OPEN, 0.0) and placed.exchange_order_id
    listed = broker.open_orders(BTC)
    assert sorted((o.client_order_id, o.conditional, o.quantity) for o in listed) == [
        ("stop-1", True, 0.01),
        ("take-1", True, 0.01),
    ]
    candle, kind, price = first_touch(sample_dir, stop, take)
    served.exchange.clock.set(candle + H - 1, 1e-9)  # the candle has not closed: nothing yet
    assert {broker.lookup(BTC, cid).status for cid in exits} == {OPEN}
    served.exchange.clock.set(candle + H, 1e-9)
    fired, other = ("stop-1", "take-1") if kind == "stop" else ("take-1", "stop-1")
    done = broker.lookup(BTC, fired)
    assert (done.status, done.filled, done.average_price) == (FILLED, 0.01, price)
    assert done.fee == pytest.approx(0.01 * price * FEE)
    assert done.timestamp_ms == candle + H - 1  # stamped inside the trigger candle
    assert broker.positions() == {}
    assert broker.lookup(BTC, other).status == OPEN  # it rests until cancelled
    cancelled = broker.cancel_exit(BTC, other)
    assert cancelled.status == CANCELLED
    assert broker.cancel_exit(BTC, other).status == CANCELLED  # again: says it is gone
    assert broker.open_orders() == []
    state = account(served)
    assert state["open_algo_orders"] == 0 and state["positions"] == {}
    assert state["wallet_balance"] == pytest.approx(
        10_000 + 0.01 * (price - entry.average_price) - FEE * 0.01 * (entry.average_price + price)
    )


def test_an_exit_whose_answer_is_lost_rests_once(broker, served, exchange_id) -> None:
    broker.place(OrderRequest("entry-2", BTC, "buy", 0.01))
    path = "/fapi/v1/algoOrder" if exchange_id == "binanceusdm" else dialect(exchange_id).order
    sent = served.exchange.requests_by_method.get(f"POST {path}", 0)  # Bybit: the entry's too
    served.exchange.set_faults(FaultPlan.parse("lost:1", delay_s=1.3, path=path, method="POST"))
    placed = broker.place_exit(ExitOrder("stop-2", BTC, "sell", 0.01, "stop", 20_000.0))
    assert placed.status == OPEN and served.exchange.faults_served == 1
    assert [o.client_order_id for o in broker.open_orders(BTC)] == ["stop-2"]
    assert served.exchange.requests_by_method[f"POST {path}"] == sent + 1  # found, not resent


def test_an_exit_that_would_trigger_at_once_is_refused(broker, exchange_id) -> None:
    entry = broker.place(OrderRequest("entry-3", BTC, "buy", 0.01))
    above = round(entry.average_price * 1.02, 1)  # a long's stop above the price
    refused = broker.place_exit(ExitOrder("stop-3", BTC, "sell", 0.01, "stop", above))
    words = {"binanceusdm": "immediately trigger", "bybit": "expect Falling"}[exchange_id]
    assert refused.status == "rejected" and words in (refused.reason or "")
    assert broker.open_orders(BTC) == []
