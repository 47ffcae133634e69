"""End to end on the replay exchange: the real sensor and live job, candle by candle, then
the backtest of the same model over the same candles.

One run and one signal per closed candle; a second tick, a lost cursor, a re-run and a failed
tick neither duplicate nor skip a candle; decisions equal the backtest's bit for bit, and the
paper trades' net returns equal the backtest's trades'.
"""

from __future__ import annotations

import logging

import dagster as dg
import pandas as pd
import pytest

from assets.live import DRIFT_CHECK, live_signals, live_signals_drift
from pipeline.backtest.config import BacktestConfig
from pipeline.data.csv_source import CandleFolder
from pipeline.jobs import live_checks_job
from pipeline.partitions import SYMBOLS_BY_MARKET_ID
from pipeline.replay.clock import ReplayClock
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.sensors import run_key
from pipeline.signals.backtest_path import backtest_path, shadow_agreement
from pipeline.signals.candle import live_features, load_inputs
from pipeline.signals.drift import market_drift
from pipeline.store.models import load_model
from pipeline.store.signals import load_signals
from pipeline.trading_replay import LiveReplay, parity, replay_resources, seed_candles
from resources.broker import BrokerResource
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from tests.helpers.live import (
    HOUR,
    LIVE_START,
    install_random_model,
    live_folder,
)

CANDLES = 10
TIMEFRAMES = ["1h", "4h", "1d"]
RISK, FEE, BALANCE = 0.5, 0.0005, 10_000.0


def _resources(database_url: str, api_url: str, home) -> dict:
    """The live job's resources on the replay exchange: paper broker, fast bounded retries."""
    return replay_resources(
        database_url,
        api_url,
        str(home),
        since="2020-10-01",
        fee=FEE,
        balance=BALANCE,
        risk_fraction=RISK,
        retry_attempts=2,
        retry_backoff_s=0.05,
    )


@pytest.fixture()
def live(tmp_path, sample_frames, db, database_url):
    folder = live_folder(tmp_path, sample_frames, CANDLES)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    model_id, _, _ = install_random_model(db, symbols, TIMEFRAMES)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
    with ReplayServer(exchange) as server:
        resources = _resources(database_url, server.url, tmp_path)
        yield LiveReplay(resources, exchange), db, symbols, model_id, folder


def _closes(first: int, count: int) -> list[int]:
    return [LIVE_START + (first + k) * HOUR for k in range(1, count + 1)]


def test_one_run_and_one_signal_per_candle_and_backtest_parity(live):
    replay, db, symbols, model_id, folder = live
    btc = "BTC/USDT:USDT"
    closes = _closes(0, CANDLES)
    half = CANDLES // 2

    for close in closes[:half]:
        replay.tick(close)
    # Two ticks at the same time: nothing new to request.
    again = replay.tick(closes[half - 1])
    assert again.requested == [] and "no new closed" in (again.skipped or "")

    # A restart that lost the cursor's last save: the sensor asks again for the same keys
    # (LiveReplay, like the daemon, launches none of them: here the harness skips them;
    # tests/trials/test_daemon_kills.py shows Dagster's daemon itself refusing them).
    saved = replay.cursor
    replay.cursor = None
    repeat = replay.tick(closes[half - 1])
    assert repeat.requested and repeat.launched == []
    replay.cursor = saved

    # A tick during an exchange outage requests nothing and keeps the cursor, so the next
    # tick (30 s later, the sensor's interval) asks for the same candle.
    replay.exchange.set_faults(FaultPlan(kind="500", count=10_000))
    failed = replay.tick(closes[half], after_ms=30_000)
    replay.exchange.set_faults(None)
    assert failed.requested == [] and failed.skipped
    retried = replay.tick(closes[half], after_ms=60_000)
    btc_keys = [k for k in retried.requested if ":BTCUSDT:" in k]
    assert btc_keys == [run_key("BTCUSDT", "1h", closes[half] - HOUR)]
    for close in closes[half + 1 :]:
        replay.tick(close)

    # A slow or retried run of a handled candle: same signal, no new order.
    rerun = replay.job.execute_in_process(
        run_config={
            "ops": {
                "live_signal": {
                    "config": {
                        "market": "BTCUSDT",
                        "timeframe": "1h",
                        "candle_ms": closes[0] - HOUR,
                    }
                }
            }
        },
        instance=replay.instance,
    )
    assert rerun.success
    recorded = rerun.output_for_node("live_signal")
    assert recorded is not None and not recorded.row.created
    assert _live_signals_reports(rerun) == []  # its candle was reported once, by its run

    # Exactly one successful run and one signal per market and candle (one run per key
    # through this harness; through the real daemon: tests/trials/test_daemon_kills.py).
    for market in SYMBOLS_BY_MARKET_ID:
        for close in closes:
            key = run_key(market, "1h", close - HOUR)
            runs = replay.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}))
            assert len(runs) == 1, key
            assert runs[0].is_success, key
    with db.connection() as conn:
        signals = load_signals(conn, "binanceusdm", btc, "1h")
        orders = conn.execute("SELECT count(*), count(DISTINCT client_order_id) FROM orders")
        total, distinct = orders.fetchone()
        conn.commit()
    assert [s["candle_ms"] for s in signals] == [c - HOUR for c in closes]
    assert {s["model_id"] for s in signals} == {model_id}
    assert total == distinct and total > 0

    # The candle after the last decided one, as the backtest needs it to act on that decision.
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, closes[-1] + HOUR)
    trades = 0
    for market, symbol in SYMBOLS_BY_MARKET_ID.items():
        report = parity(
            db,
            "binanceusdm",
            symbol,
            "1h",
            TIMEFRAMES,
            [c - HOUR for c in closes],
            BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
            f"paper-{market}",
            BALANCE,
        )
        assert report.compared == CANDLES  # the last one too: a decision needs no label
        assert report.identical_decisions, (market, report.decision_mismatches)
        assert report.probability_max_abs_diff == 0.0
        assert report.trade_max_abs_diff < 1e-12, (
            market,
            report.live_trades,
            report.backtest_trades,
        )
        assert report.backtest_only_trades == 0 and report.same_trades, (
            market,
            report.live_trades,
            report.backtest_trades,
        )
        assert report.live_return == pytest.approx(report.backtest_return, abs=1e-12)
        trades += report.trades_compared
    assert trades >= 3, "the test model should complete several round trips"
    with db.connection() as conn:
        sides = {r[0] for r in conn.execute("SELECT DISTINCT side FROM signals").fetchall()}
        conn.commit()
    assert sides == {1, 0, -1}, "the test model should go long, short and flat"


def test_an_ensemble_in_production_trades_live_as_its_backtest_bit_for_bit(
    tmp_path, sample_frames, db, database_url
):
    """One record of three networks (as `lstm_model` stores by default) through the sensor,
    the live job and the paper broker: every decision is the backtest path's, the mean of the
    same three networks, bit for bit, and the fills are the backtest's trades."""
    count = 4
    folder = live_folder(tmp_path, sample_frames, count)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    model_id, _, _ = install_random_model(db, symbols, TIMEFRAMES, members=3)
    closes = _closes(0, count)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
    with ReplayServer(exchange) as server:
        replay = LiveReplay(_resources(database_url, server.url, tmp_path), exchange)
        for close in closes:
            replay.tick(close)
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, closes[-1] + HOUR)
    with db.connection() as conn:
        assert load_model(conn, model_id).seeds == [7, 8, 9]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        conn.commit()
    assert orders > 0
    for market, symbol in SYMBOLS_BY_MARKET_ID.items():
        report = parity(
            db,
            "binanceusdm",
            symbol,
            "1h",
            TIMEFRAMES,
            [c - HOUR for c in closes],
            BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
            f"paper-{market}",
            BALANCE,
        )
        assert report.compared == count
        assert report.identical_decisions, (market, report.decision_mismatches)
        assert report.probability_max_abs_diff == 0.0
        assert report.backtest_only_trades == 0 and report.same_trades, market
        assert report.trade_max_abs_diff < 1e-12, market


def test_without_any_model_nothing_is_recorded_and_the_run_says_why(
    tmp_path, sample_frames, db, database_url
):
    folder = live_folder(tmp_path, sample_frames, 2)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START + HOUR + 60_000, speed=1.0))
    with ReplayServer(exchange) as server:
        resources = {
            "database": PostgresResource(url=database_url),
            "candle_source": CandleSourceResource(source="ccxt", api_url=server.url),
            "broker": BrokerResource(kind="paper", api_url=server.url, home=str(tmp_path)),
        }
        replay = LiveReplay(resources, exchange)
        result = _run_first_candle(replay)
    assert result.success
    assert result.output_for_node("live_signal") is None
    outputs = [
        e.event_specific_data.metadata
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == "live_signal"
    ]
    assert [m["reason"].value for m in outputs] == ["no model to decide with"]
    records = replay.instance.all_logs(result.run_id)
    warnings = [e.message for e in records if e.message and e.level == logging.WARNING]
    # Said at WARNING, with the candle as a UTC date: a green run that records nothing.
    assert any(
        "no production lstm model for 1h and no candidate" in m and " UTC" in m for m in warnings
    ), [e.message for e in records]
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM signals").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
        conn.commit()


def _run_first_candle(replay: LiveReplay, candle_ms: int = LIVE_START):
    """One live job run for one of BTCUSDT's live candles (the first), in process."""
    return replay.job.execute_in_process(
        run_config={
            "ops": {
                "live_signal": {
                    "config": {"market": "BTCUSDT", "timeframe": "1h", "candle_ms": candle_ms}
                }
            }
        },
        instance=replay.instance,
    )


def _live_signals_reports(result) -> list[tuple[str | None, dict]]:
    """The run's materialisations of `live_signals`: (partition, metadata values)."""
    return [
        (e.partition, {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()})
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.asset_key == dg.AssetKey("live_signals")
    ]


def test_a_checked_candidate_decides_in_shadow_without_production_and_is_never_executed(
    tmp_path, sample_frames, db, database_url
):
    folder = live_folder(tmp_path, sample_frames, 4)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START)
    # A candidate whose ERROR check failed (it learnt its training set by heart) never
    # decides, not even in shadow.
    overfit = {"lstm_model_gap_within_bound": {"passed": False, "severity": "ERROR"}}
    install_random_model(db, symbols, TIMEFRAMES, promote=False, checks=overfit)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START + 3 * HOUR + 60_000, speed=1.0))
    with ReplayServer(exchange) as server:
        replay = LiveReplay(_resources(database_url, server.url, tmp_path), exchange)
        nothing = _run_first_candle(replay)
        assert nothing.success and _live_signals_reports(nothing) == []
        # One that only failed a WARN check (no better than the majority class) decides in
        # shadow: recorded, reported, never executed.
        warned = {
            "lstm_model_gap_within_bound": {"passed": True, "severity": "ERROR"},
            "lstm_model_beats_majority": {"passed": False, "severity": "WARN"},
        }
        candidate, _, _ = install_random_model(
            db, symbols, TIMEFRAMES, seed=11, promote=False, checks=warned
        )
        results = [_run_first_candle(replay, LIVE_START + k * HOUR) for k in range(3)]
    assert all(r.success for r in results)
    warnings = [
        e.message
        for e in replay.instance.all_logs(results[0].run_id)
        if e.message and e.level == logging.WARNING
    ]
    assert any(f"candidate {candidate} decides BTCUSDT" in m and "shadow" in m for m in warnings)
    with db.connection() as conn:
        rows = load_signals(conn, "binanceusdm", "BTC/USDT:USDT", "1h")
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        conn.commit()
    assert [(r["candle_ms"], r["mode"], r["model_id"]) for r in rows] == [
        (LIVE_START + k * HOUR, "shadow", candidate) for k in range(3)
    ]
    assert orders == 0
    # The first signal resolved once its exit candle (two opens later) was stored: the
    # market's move from the next open to the one after, net of the round trip.
    btc = sample_frames["BTCUSDT"].set_index("timestamp")["open"]
    move = btc[LIVE_START + 2 * HOUR] / btc[LIVE_START + HOUR] - 1
    first = rows[0]
    assert first["realised_return"] == pytest.approx(move, rel=1e-12)
    expected_net = 0.0 if first["side"] == 0 else first["side"] * move - 2 * FEE
    assert first["realised_net_return"] == pytest.approx(expected_net, rel=1e-9, abs=1e-15)
    assert rows[2]["realised_return"] is None  # its exit candle has not closed
    # Each run reported the candle to live_signals, BTCUSDT's partition, in shadow mode.
    reports = [_live_signals_reports(r) for r in results]
    assert [[p for p, _ in rep] for rep in reports] == [["BTCUSDT"]] * 3
    last = reports[2][0][1]
    assert last["mode"] == "shadow" and last["model_id"] == str(candidate)  # text: an id
    assert last["side"] == rows[2]["side"] and last["candle"] == "2021-01-10 02:00 UTC"
    assert last["probability_up"] == round(rows[2]["probability_up"], 4)
    assert last["top_features"].count("(") == 3
    assert last["realised_net_return"] == pytest.approx(expected_net, abs=1e-6)
    assert last["last_signals"].count("| shadow |") == 3


def test_champion_and_challenger_decide_each_candle_and_only_production_trades(live):
    replay, db, symbols, production, _ = live
    # The challenger is a seed ensemble: one record, three networks deciding as one.
    challenger, _, _ = install_random_model(
        db, symbols, TIMEFRAMES, seed=13, promote=False, members=3
    )
    for close in _closes(0, 2):
        replay.tick(close)
    with db.connection() as conn:
        rows = [s for symbol in symbols for s in load_signals(conn, "binanceusdm", symbol, "1h")]
        traded = conn.execute(
            "SELECT DISTINCT s.mode FROM orders o JOIN signals s ON s.id = o.signal_id"
        ).fetchall()
        record = load_model(conn, challenger)
        agreement = shadow_agreement(conn, "binanceusdm", symbols, "1h", TIMEFRAMES, record)
        conn.commit()
    assert record.seeds == [13, 14, 15]
    modes = {(r["mode"], r["model_id"]) for r in rows}
    assert modes == {("production", production), ("shadow", challenger)}
    assert len(rows) == 2 * 2 * len(symbols)  # two candles, two models, every market
    assert traded == [("production",)]
    # Every shadow decision equals the backtest path's on the same candle, bit for bit: what
    # the gate's min_shadow_candles counts.
    assert agreement == (2 * len(symbols), 2 * len(symbols))


def test_the_drift_watch_runs_on_the_deciding_model_and_names_its_verdict(live, database_url):
    replay, db, symbols, production, _ = live
    replay.tick(_closes(0, 1)[0])
    defs = dg.Definitions(
        assets=[live_signals],
        asset_checks=[live_signals_drift],
        jobs=[live_checks_job],
        resources=replay.resources,
    )
    result = defs.resolve_job_def("live_checks_job").execute_in_process(instance=replay.instance)
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == DRIFT_CHECK
    meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    assert meta["model_id"] == production and meta["mode"] == "production"
    table = meta["by_market"]
    assert all(f"| {market} |" in table for market in SYMBOLS_BY_MARKET_ID)
    assert "calibration not judged yet" in table  # a handful of resolved signals so far
    # The verdict is the drift module's on the same frames (its logic is tested on its own).
    with db.connection() as conn:
        record = load_model(conn, production)
        inputs = {
            market: load_inputs(conn, "binanceusdm", symbol, "1h", symbols, TIMEFRAMES, LIVE_START)
            for market, symbol in SYMBOLS_BY_MARKET_ID.items()
        }
        conn.commit()
    train = record.data_window["train"]
    verdicts = {}
    for market, market_inputs in inputs.items():
        drift = market_drift(
            live_features(market_inputs, "1h"),
            record.features,
            pd.Timestamp(train["first_decision"]),
            pd.Timestamp(train["last_decision"]),
        )
        row = table.split(f"| {market} |")[1].split("\n")[0]
        assert f"{len(drift.drifted)}/{len(record.features)}" in row, (market, row)
        assert (f"{market} drifted" in evaluation.description) == (not drift.passed)
        verdicts[market] = drift.passed
    # Calibration is not judged yet, so the verdict is the features' on every market.
    assert evaluation.passed == all(verdicts.values())


SAME_CANDLE_RUN = """
import sys, time
import dagster as dg
from pipeline.inference_job import live_inference_job
from pipeline.trading_replay import replay_resources
url, api, home, candle, start_at = sys.argv[1:6]
resources = replay_resources(url, api, home, since="2020-10-01", fee=0.0005, balance=10_000.0,
                             risk_fraction=0.5, retry_attempts=2, retry_backoff_s=0.05)
job = dg.Definitions(jobs=[live_inference_job], resources=resources).resolve_job_def(
    live_inference_job.name)
config = {"ops": {"live_signal": {"config": {
    "market": "BTCUSDT", "timeframe": "1h", "candle_ms": int(candle)}}}}
time.sleep(max(0.0, float(start_at) - time.time()))  # both runs start at the same moment
result = job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral())
print("ok" if result.success else "failed")
"""


def test_two_runs_of_the_same_candle_at_once_execute_it_once(live, database_url, tmp_path):
    """Two processes run the live job for one candle at the same moment (a duplicate launch
    that Dagster's run keys did not stop, e.g. two instances): one signal, one order."""
    import subprocess
    import sys
    import time

    replay, db, symbols, model_id, folder = live
    # A candle the model trades: the backtest path's decisions (bit for bit the live job's)
    # over the first live hours, on candles stored beforehand.
    seed_candles(
        db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START + 7 * HOUR
    )
    with db.connection() as conn:
        path = backtest_path(
            conn,
            "binanceusdm",
            "BTC/USDT:USDT",
            "1h",
            TIMEFRAMES,
            load_model(conn, model_id),
            LIVE_START,
            LIVE_START + 5 * HOUR,
        )
        conn.commit()
    candle = min(ms for ms, (_, side) in path.decisions.items() if side != 0)
    replay.exchange.clock.set(candle + HOUR + 60_000, speed=1.0)
    api = replay.resources["candle_source"].api_url
    start_at = f"{time.time() + 4.0:.3f}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SAME_CANDLE_RUN,
                database_url,
                api,
                str(tmp_path),
                str(candle),
                start_at,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == ["ok", "ok"], [
        err[-2000:] for _, err in outputs
    ]
    with db.connection() as conn:
        signals = conn.execute(
            "SELECT id, side FROM signals WHERE symbol = 'BTC/USDT:USDT'"
        ).fetchall()
        orders = conn.execute(
            "SELECT client_order_id, count(*) FROM orders GROUP BY client_order_id"
        ).fetchall()
        conn.commit()
    assert len(signals) == 1
    assert all(count == 1 for _, count in orders)
    assert signals[0][1] == path.decisions[candle][1] != 0
    # One order, placed once at the (paper) exchange: one paper order, one fill.
    assert len(orders) == 1
    with db.connection() as conn:
        paper_orders = conn.execute("SELECT count(*) FROM paper_orders").fetchone()[0]
        fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]
        conn.commit()
    assert (paper_orders, fills) == (1, 1)


def test_an_outcome_is_never_read_from_a_candle_the_exchange_has_not_closed(
    tmp_path, sample_frames, db, database_url
):
    """The offline recipe's trap: the store already holds candles the replay exchange's
    clock has not reached (a main job that stored the sample further). A signal resolves
    only once its exit candle has closed on the exchange's clock, not once it is stored."""
    folder = live_folder(tmp_path, sample_frames, 4)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(
        db, CandleFolder(folder), "binanceusdm", symbols, TIMEFRAMES, LIVE_START + 5 * HOUR
    )
    install_random_model(db, symbols, TIMEFRAMES)
    exchange = ReplayExchange(folder, ReplayClock(LIVE_START + HOUR + 60_000, speed=1.0))
    with ReplayServer(exchange) as server:
        replay = LiveReplay(_resources(database_url, server.url, tmp_path), exchange)
        assert _run_first_candle(replay).success  # decides LIVE_START
        # The exit candle (open LIVE_START + 2 h) is stored but closes at + 3 h.
        exchange.clock.set(LIVE_START + 2 * HOUR + 60_000, 1.0)
        assert _run_first_candle(replay, LIVE_START + HOUR).success
        with db.connection() as conn:
            early = load_signals(conn, "binanceusdm", "BTC/USDT:USDT", "1h")
            conn.commit()
        exchange.clock.set(LIVE_START + 3 * HOUR + 60_000, 1.0)
        assert _run_first_candle(replay, LIVE_START + 2 * HOUR).success
    with db.connection() as conn:
        late = load_signals(conn, "binanceusdm", "BTC/USDT:USDT", "1h")
        conn.commit()
    assert early[0]["candle_ms"] == LIVE_START and early[0]["realised_return"] is None
    btc = sample_frames["BTCUSDT"].set_index("timestamp")["open"]
    move = btc[LIVE_START + 2 * HOUR] / btc[LIVE_START + HOUR] - 1
    assert late[0]["realised_return"] == pytest.approx(move, rel=1e-12)  # closed by then
    assert late[1]["realised_return"] is None  # its exit candle closes at + 4 h
