"""The managers' main path through ccxt's bybit client, over HTTP, against the replay
exchange's Bybit v5 dialect: the portfolio manager rebalances, reverses with reduce-only
closes and keeps its book equal to the exchange; the per-market manager opens, reverses and
resolves an order whose answer was lost, each order placed once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.exchange.client import make_exchange
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import FILLED
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.execution.manager import PositionManager
from pipeline.execution.portfolio_manager import MarketTarget, PortfolioManager
from pipeline.execution.prices import ExchangePriceFeed
from pipeline.execution.risk import RiskConfig
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from pipeline.store import trading
from tests.helpers.replay import account, frozen_replay
from trials.replay_desk import record_side, save_trial_model

EXCHANGE, H = "bybit", 3_600_000
BTC, ETH, SOL = (f"{b}/USDT:USDT" for b in ("BTC", "ETH", "SOL"))
C0 = 1_677_664_800_000  # 2023-03-01T10:00Z
KEY, SECRET = "bybit-exec-key-71c0", "bybit-exec-secret-0e42"
FEE = 0.0005


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, C0 + H + 60_000, KEY, SECRET) as server:
        yield server


def make_broker(server: ReplayServer) -> CcxtBroker:
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    broker = CcxtBroker.from_env(
        EXCHANGE, server.url, 1000, RetryPolicy(attempts=4, backoff_s=0.01), environ=env
    )
    broker.exchange.enableRateLimit = False
    return broker


def open_at(sample_dir: Path, symbol: str, candle_ms: int) -> float:
    frame = pd.read_csv(sample_dir / f"{symbol.split('/')[0]}USDT.csv.gz")
    return float(frame.loc[frame["timestamp"] == candle_ms, "open"].iloc[0])


def book(db) -> dict[str, float]:
    with db.connection() as conn:
        return {s: p.quantity for s, p in trading.book(conn, EXCHANGE).items() if p.quantity}


def held(server: ReplayServer) -> dict[str, float]:
    return {m: p["qty"] for m, p in account(server)["positions"].items()}


def test_the_portfolio_manager_rebalances_and_reverses_through_bybit(
    db, replay, sample_dir
) -> None:
    broker = make_broker(replay)
    manager = PortfolioManager(db, broker, RiskConfig(margin_mode="cross"), EXCHANGE, "1h", H)
    weights = {BTC: 0.4, ETH: -0.3, SOL: 0.1}
    done = manager.execute(
        C0, [MarketTarget(s, w, True) for s, w in weights.items()], now_ms=C0 + H + 60_000
    )
    assert done.action == "rebalanced" and done.equity_before == 10_000.0
    for market in done.markets:
        (order,) = market.orders
        price = open_at(sample_dir, market.symbol, C0 + H)
        assert (order.status, order.average_price) == (FILLED, price)
        assert order.filled == pytest.approx(abs(weights[market.symbol]) * 10_000 / price, abs=1e-3)
        assert order.fee == pytest.approx(FEE * order.filled * price)
    assert book(db) == pytest.approx({s: p.quantity for s, p in broker.positions().items()})

    replay.exchange.clock.set(C0 + 2 * H + 60_000, 1e-9)
    flipped = {BTC: -0.2, ETH: -0.3, SOL: 0.0}
    done = manager.execute(
        C0 + H, [MarketTarget(s, w, True) for s, w in flipped.items()], now_ms=C0 + 2 * H + 60_000
    )
    btc = next(m for m in done.markets if m.symbol == BTC)
    assert [o.status for o in btc.orders] == [FILLED, FILLED]  # a reduce-only close, an open
    assert held(replay)["BTCUSDT"] < 0 and "SOLUSDT" not in held(replay)
    with db.connection() as conn:
        flags = conn.execute(
            "SELECT reduce_only FROM orders WHERE symbol = %s ORDER BY id", (BTC,)
        ).fetchall()
    assert [f[0] for f in flags] == [False, True, False]
    assert book(db) == pytest.approx({s: p.quantity for s, p in broker.positions().items()})
    assert set(account(replay)["placements"].values()) == {1}


def test_the_position_manager_places_a_lost_order_once_through_bybit(
    db, replay, monkeypatch
) -> None:
    monkeypatch.setenv("SIGNALS_EXCHANGE", EXCHANGE)  # the exchange record_side names
    broker = make_broker(replay)
    manager = PositionManager(
        db, broker, RiskConfig(risk_fraction=0.05, leverage=2), EXCHANGE, "1h", H
    )
    model_id = save_trial_model(db)
    replay.exchange.set_faults(
        FaultPlan.parse("lost:1", delay_s=1.3, path="/v5/order/create", method="POST")
    )
    done = manager.execute(record_side(db, model_id, BTC, C0, 1), now_ms=C0 + H + 60_000)
    assert done.action == "opened" and replay.exchange.faults_served == 1
    state = account(replay)
    assert list(state["placements"].values()) == [1] and list(state["attempts"].values()) == [1]
    assert held(replay)["BTCUSDT"] > 0 and book(db) == pytest.approx({BTC: held(replay)["BTCUSDT"]})
    replay.exchange.clock.set(C0 + 2 * H + 60_000, 1e-9)
    signal = record_side(db, model_id, BTC, C0 + H, -1)
    assert manager.execute(signal, now_ms=C0 + 2 * H + 60_000).action == "reversed"
    assert held(replay)["BTCUSDT"] < 0
    assert set(account(replay)["placements"].values()) == {1}
    assert book(db) == pytest.approx({BTC: held(replay)["BTCUSDT"]})


def test_the_paper_brokers_feed_stamps_bybit_quotes_with_the_exchange_clock(
    replay, sample_dir
) -> None:
    """Bybit's tickers carry no time: a paper fill is stamped with the exchange's clock (the
    replay's), not this machine's (which would put every replayed fill years later)."""
    feed = ExchangePriceFeed(make_exchange(EXCHANGE, replay.url, 1000))
    feed.exchange.enableRateLimit = False
    price, stamp = feed.quote(BTC)
    assert (price, stamp) == (open_at(sample_dir, BTC, C0 + H), C0 + H + 60_000)
