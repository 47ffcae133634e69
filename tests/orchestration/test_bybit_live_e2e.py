"""End to end through ccxt's bybit client: the real sensor and live job read Bybit's candles
from the replay exchange's v5 dialect and a barrier model trades the replay's account there,
its stops and take-profits resting as Bybit conditional orders; every trade exits as its
backtest's does, and the kill switch leaves nothing resting (the Binance version is in
test_live_e2e.py)."""

from __future__ import annotations

import pytest

from pipeline.backtest.config import BacktestConfig
from pipeline.data.csv_source import CandleFolder
from pipeline.partitions import SYMBOLS_BY_MARKET_ID
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.trading_replay import LiveReplay, parity, replay_resources, seed_candles
from tests.helpers.live import HOUR, LIVE_START, install_random_model, live_folder
from tests.helpers.replay import account

EXCHANGE = "bybit"
TIMEFRAMES = ["1h", "4h", "1d"]
RISK, FEE, BALANCE = 0.5, 0.0005, 10_000.0
BARRIER_RULE = {"horizon": 4, "barrier_k": 1.0, "margin": 0.0, "cost": 0.001, "vol_window": 48}
CANDLES = 40


def test_a_barrier_model_trades_through_bybit_with_conditional_exits(
    tmp_path, sample_frames, db, database_url
):
    folder = live_folder(tmp_path, sample_frames, CANDLES)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), EXCHANGE, symbols, TIMEFRAMES, LIVE_START)
    install_random_model(db, symbols, TIMEFRAMES, label=BARRIER_RULE, exchange=EXCHANGE)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
    closes = [LIVE_START + k * HOUR for k in range(1, CANDLES + 1)]
    btc = "BTC/USDT:USDT"
    with ReplayServer(exchange) as server:
        resources = replay_resources(
            database_url,
            server.url,
            str(tmp_path),
            exchange=EXCHANGE,
            since="2020-10-01",
            fee=FEE,
            balance=BALANCE,
            risk_fraction=RISK,
            retry_attempts=2,
            retry_backoff_s=0.05,
            broker="ccxt",
        )
        replay = LiveReplay(resources, exchange)
        broker = resources["broker"].open(db, "BTCUSDT")
        assert broker.name == EXCHANGE
        traded = []
        for close in closes:
            if len(traded) >= 16 and btc in broker.positions():
                break
            outcome = replay.tick(close, markets={"BTCUSDT"})
            assert outcome.failures == [], outcome
            position = broker.positions().get(btc)
            resting = broker.open_orders(btc)
            assert all(o.conditional for o in resting)
            if position is None:
                assert resting == []
            else:  # a stop and a take-profit for the whole position
                assert len(resting) == 2
                assert all(o.quantity == pytest.approx(abs(position.quantity)) for o in resting)
            traded.append(close)
        assert btc in broker.positions() and len(broker.open_orders(btc)) == 2
        (tmp_path / "KILL_SWITCH").write_text("test")
        replay.tick(close, markets={"BTCUSDT"})
        state = account(server)
        assert state["positions"] == {} and state["open_orders"] == 0
        assert state["open_algo_orders"] == 0
        requests = server.exchange.stats()["requests"]
        assert requests["/v5/order/create"] > 0 and requests["/v5/market/kline"] > 0
        assert not any(path.startswith("/fapi/") for path in requests)
        with db.connection() as conn:
            still_open = conn.execute(
                "SELECT count(*) FROM orders WHERE status IN ('open', 'sent', 'unknown')"
            ).fetchone()[0]
            conn.commit()
        assert still_open == 0
        report = parity(
            db,
            EXCHANGE,
            btc,
            "1h",
            TIMEFRAMES,
            [c - HOUR for c in traded],
            BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
            broker.name,
            BALANCE,
        )
    tick = float(exchange.market.rules["BTCUSDT"].tick)
    backtest = {t["entry_ms"]: t for t in report.backtest_trades}
    assert report.identical_decisions and report.backtest_only_trades == 0
    assert len(report.live_trades) >= 3
    killed = [t for t in report.live_trades if t["exit_kind"] == "flatten"]
    assert len(killed) == 1 and killed[0] == report.live_trades[-1]  # the kill switch's
    for trade in report.live_trades[:-1]:
        twin = backtest[trade["entry_ms"]]
        assert trade["exit_kind"] == twin["exit_kind"], (trade, twin)
        assert abs(trade["exit_price"] - twin["exit_price"]) <= tick / 2 + 1e-9, (trade, twin)
        assert trade["net_return"] == pytest.approx(twin["net_return"], rel=1e-2, abs=1e-6)
    kinds = {t["exit_kind"] for t in report.live_trades}
    assert kinds & {"stop", "take_profit"} and kinds & {"time", "reverse"}, kinds
