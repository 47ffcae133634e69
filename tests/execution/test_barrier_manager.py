"""`BarrierManager` on the replay exchange's account through ccxt: what happens to resting
exits when a run dies between the entry and its exits, and when an exit fills while nothing
runs (found and booked by reconciliation; its sibling cancelled by the next run)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.execution.barrier_manager import BarrierManager
from pipeline.execution.broker import BrokerError
from pipeline.execution.risk import RiskConfig
from pipeline.features.labels import LabelRule
from pipeline.replay.faults import FaultPlan
from pipeline.signals.inference import LONG
from pipeline.store import barrier_trades
from pipeline.store.candles import upsert_candles
from tests.execution.test_manager import (
    BTC,
    EXCHANGE,
    KEY,
    MARKETS,
    SECRET,
    T0,
    TIMEFRAME,
    Desk,
    H,
    assert_book_is_the_exchange,
    make_broker,
    rows,
)
from tests.helpers.replay import account, frozen_replay

RULE = LabelRule(horizon=6, barrier_k=1.0, margin=0.0, cost=0.001)


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, T0, KEY, SECRET) as server:  # each step sets the clock
        yield server


@pytest.fixture()
def desk(db, replay, sample_dir) -> Desk:
    made = Desk(db, replay, sample_dir)
    with db.connection() as conn:  # σ's window before T0 too: the levels need it
        for symbol, market in MARKETS.items():
            frame = pd.read_csv(Path(sample_dir) / f"{market}.csv.gz")
            near = frame[(frame["timestamp"] >= T0 - 72 * H) & (frame["timestamp"] < T0 + 72 * H)]
            upsert_candles(conn, EXCHANGE, symbol, TIMEFRAME, near.reset_index(drop=True))
    return made


def _manager(db, broker) -> BarrierManager:
    risk = RiskConfig(risk_fraction=0.5, horizon=RULE.horizon)
    return BarrierManager(db, broker, risk, EXCHANGE, TIMEFRAME, H, rule=RULE)


def _exit_rows(db) -> list[tuple]:
    return rows(db, "SELECT purpose, status FROM orders WHERE purpose <> 'open' ORDER BY id")


def test_a_run_that_dies_before_its_exits_rest_has_them_placed_by_its_retry(
    db, replay, desk
) -> None:
    broker = make_broker(replay)
    manager = _manager(db, broker)
    signal = desk.signal(BTC, T0, LONG)
    now_ms = desk.now(T0)
    broker.equity()  # markets loaded; then every exit placement fails past the bound
    replay.exchange.set_faults(
        FaultPlan.parse("500:1000", delay_s=0.0, path="/fapi/v1/algoOrder", method="POST")
    )
    with pytest.raises(BrokerError, match="outcome unknown"):
        manager.execute(signal, now_ms=now_ms)
    assert BTC in broker.positions() and account(replay)["open_algo_orders"] == 0
    assert _exit_rows(db) == [("stop", "unknown")]  # the first exit failed; the run died

    replay.exchange.set_faults(None)
    done = manager.execute(signal, now_ms=now_ms)  # Dagster's retry of the same candle
    assert done.action == "stale"  # entered already: it only rests the missing exits
    assert sorted(_exit_rows(db)) == [("stop", "open"), ("take_profit", "open")]
    assert account(replay)["open_algo_orders"] == 2
    assert_book_is_the_exchange(db, broker)
    assert manager.reconcile([BTC]) == []


def test_an_exit_that_fills_while_nothing_runs_is_found_and_booked(db, replay, desk) -> None:
    broker = make_broker(replay)
    manager = _manager(db, broker)
    assert manager.execute(desk.signal(BTC, T0, LONG), now_ms=desk.now(T0)).action == "opened"
    with db.connection() as conn:
        trade = barrier_trades.current(conn, broker.name, BTC)
    assert trade is not None and trade.hold_until_ms == T0 + RULE.horizon * H
    quantity = broker.positions()[BTC].quantity
    # Hours pass with no run: the exchange triggers one exit on its own.
    for hours in range(2, 60):
        replay.exchange.clock.set(T0 + hours * H, 1e-9)
        if BTC not in broker.positions():
            break
    assert account(replay)["open_algo_orders"] == 1 and BTC not in broker.positions()
    assert manager.reconcile([BTC]) == []  # `signals reconcile`: the fill is found, booked
    ((purpose, _),) = [r for r in _exit_rows(db) if r[1] == "filled"]
    assert purpose in ("stop", "take_profit")
    fills = rows(db, "SELECT side, quantity FROM fills ORDER BY filled_at")
    assert fills[-1] == ("sell", pytest.approx(quantity))
    assert_book_is_the_exchange(db, broker)
    # The next run cancels the sibling (nothing may rest without a position) and forgets
    # the trade.
    later = T0 + (hours - 1) * H
    done = manager.execute(desk.signal(BTC, later, 0), now_ms=desk.now(later))
    assert done.action == "none"
    assert account(replay)["open_algo_orders"] == 0
    assert sorted(s for _, s in _exit_rows(db)) == ["cancelled", "filled"]
    with db.connection() as conn:
        assert barrier_trades.current(conn, broker.name, BTC) is None
