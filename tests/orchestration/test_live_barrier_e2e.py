"""A barrier model live on the replay exchange: the real sensor and live job, candle by
candle, with its take-profit and stop resting at the broker (a paper account per market, then
the replay exchange's own account through ccxt), compared trade by trade with the backtest:
entry, exit kind, exit price and net return. Exits rest exactly while a position is open, and
the kill switch leaves nothing resting."""

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
from tests.orchestration.test_live_e2e import BALANCE, FEE, RISK, TIMEFRAMES, _closes, _resources

BARRIER_CANDLES = 48
BARRIER_RULE = {"horizon": 4, "barrier_k": 1.0, "margin": 0.0, "cost": 0.001, "vol_window": 48}


def test_a_barrier_model_trades_live_with_resting_exits_as_its_backtest_does(
    tmp_path, sample_frames, db, database_url
):
    """A barrier model's exits rest at the broker (a reduce-only stop and take-profit at the
    backtest's levels), triggered inside a candle by the backtest's rule: every trade's entry,
    exit kind, exit price and net return equal the backtest's. After every run, exits rest
    exactly while a position is open: two (stop, take-profit) for its whole quantity, none
    when flat."""
    folder = live_folder(tmp_path, sample_frames, BARRIER_CANDLES)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    install_random_model(db, symbols, TIMEFRAMES, label=BARRIER_RULE)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
    closes = _closes(0, BARRIER_CANDLES)
    account, btc = "paper-BTCUSDT", "BTC/USDT:USDT"
    with ReplayServer(exchange) as server:
        resources = _resources(database_url, server.url, tmp_path)
        replay = LiveReplay(resources, exchange)
        broker = resources["broker"].open(db, "BTCUSDT")
        for close in closes:
            outcome = replay.tick(close, markets={"BTCUSDT"})
            assert outcome.failures == [], outcome
            _assert_exits_rest_only_with_a_position(db, broker, account, btc)
        seed_candles(
            db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, closes[-1] + HOUR
        )
        report = parity(
            db,
            "binanceusdm",
            btc,
            "1h",
            TIMEFRAMES,
            [c - HOUR for c in closes],
            BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
            account,
            BALANCE,
        )
    assert report.identical_decisions, report.decision_mismatches
    assert report.exit_mismatches == [], report.exit_mismatches
    assert report.backtest_only_trades == 0 and report.trade_max_abs_diff < 1e-12, (
        report.live_trades,
        report.backtest_trades,
    )
    kinds = {t["exit_kind"] for t in report.live_trades}
    assert {"stop", "take_profit"} <= kinds, kinds  # levels hit inside candles, both kinds
    assert kinds & {"time", "reverse"}, kinds  # and exits at an open


def test_on_the_exchange_account_exits_rest_at_the_exchange_and_the_kill_switch_leaves_none(
    tmp_path, sample_frames, db, database_url
):
    """The same barrier model on the replay exchange's own account through ccxt: its stops
    and take-profits rest at the exchange (Binance's algo orders), trigger there, and every
    trade exits as the backtest's does: same entry, same kind of exit, at the backtest's
    price to the market's tick (ccxt rounds the trigger price), the net return within the
    drift of orders rounded to the lot. Then the kill switch, with a position open: flat, and
    nothing left resting at the exchange or open in the book."""
    folder = live_folder(tmp_path, sample_frames, 40)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    install_random_model(db, symbols, TIMEFRAMES, label=BARRIER_RULE)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
    closes = _closes(0, 40)
    btc = "BTC/USDT:USDT"
    with ReplayServer(exchange) as server:
        resources = replay_resources(
            database_url,
            server.url,
            str(tmp_path),
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
        traded = []
        for close in closes:
            if len(traded) >= 16 and btc in broker.positions():
                break
            outcome = replay.tick(close, markets={"BTCUSDT"})
            assert outcome.failures == [], outcome
            _assert_exits_rest_only_with_a_position(db, broker, broker.name, btc)
            traded.append(close)
        assert btc in broker.positions() and len(broker.open_orders(btc)) == 2
        tick = float(exchange.market.rules["BTCUSDT"].tick)
        report = parity(
            db,
            "binanceusdm",
            btc,
            "1h",
            TIMEFRAMES,
            [c - HOUR for c in traded],
            BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
            broker.name,
            BALANCE,
            tick=tick,
        )
        assert report.identical_decisions and report.same_trades, report.to_json()
        assert len(report.live_trades) >= 2 and report.trade_tolerance < 1e-4
        kinds = {t["exit_kind"] for t in report.live_trades}
        assert kinds & {"stop", "take_profit"} and kinds & {"time", "reverse"}, kinds

        (tmp_path / "KILL_SWITCH").write_text("test")
        replay.tick(close, markets={"BTCUSDT"})
        state = account(server)
        assert state["positions"] == {} and state["open_orders"] == 0
        assert state["open_algo_orders"] == 0
        with db.connection() as conn:
            still_open = conn.execute(
                "SELECT count(*) FROM orders WHERE status IN ('open', 'sent', 'unknown')"
            ).fetchone()[0]
            conn.commit()
        assert still_open == 0


def _assert_exits_rest_only_with_a_position(db, broker, account: str, symbol: str) -> None:
    """The book and the broker agree on what rests, and it rests only beside a position."""
    position = broker.positions().get(symbol)
    resting = broker.open_orders(symbol)
    with db.connection() as conn:
        booked = conn.execute(
            "SELECT client_order_id, purpose, quantity FROM orders "
            "WHERE account = %s AND status = 'open'",
            (account,),
        ).fetchall()
        conn.commit()
    assert sorted(o.client_order_id for o in resting) == sorted(r[0] for r in booked)
    if position is None:
        assert resting == [], resting
    else:
        assert sorted(r[1] for r in booked) == ["stop", "take_profit"]
        assert all(o.quantity == pytest.approx(abs(position.quantity)) for o in resting)
