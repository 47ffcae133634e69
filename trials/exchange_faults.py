"""Exchange faults by the hundred, over HTTP through ccxt against the replay exchange, of
every kind the replay serves (429, 500, a hang closed unanswered, an answer lost after the work,
a reset before or after the work, a cut body, a 200 that is not JSON), injected at random
(seeded) requests across three paths:

(a) ingest: `ingest_partition` through `open_source('ccxt', ...)`, five markets × 1h/4h/1d, in
    rounds as the replay clock moves on; afterwards each table equals the source row by row;
(b) the live refresh: the real `new_candle_sensor` and `live_inference_job` (Dagster runs,
    in-process) on a random-weight production model, candle by candle; afterwards every
    stored series equals the source up to the last close and each market decided each candle
    exactly once;
(c) order placement: `PositionManager.execute` through `CcxtBroker`, random sides, faults on
    every request of the signed API; afterwards each client order id placed once at the
    exchange, each order the signals called for placed, the book equal to the exchange.

A step whose retries run past the bound fails with a clear error; the trial then runs it again
(as the next run would) and still demands nothing lost or duplicated. Cases are the faults
actually served (the replay's count), not those planned; a path's faults survived when the
step they hit ended in the state demanded.

    python -m trials.exchange_faults --faults 100 [--exchange bybit]

With `--exchange bybit` every client is ccxt's bybit, speaking Bybit v5 to the same replay.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.data.csv_source import CandleFolder
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.replay.dialects import dialect
from pipeline.replay.faults import FAULT_KINDS, FaultPlan
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.database import Database
from trials.outcome import TrialOutcome, add_common_arguments, run_and_report
from trials.replay_desk import (
    KEY,
    SAMPLE_DIR,
    SECRET,
    TIMEFRAME,
    H,
    book_against_exchange,
    exchange_flag,
    fresh_trial_database,
    market_id,
    record_side,
    replay_exchange,
    save_trial_model,
    speaking,
    trial_exchange,
    trial_server,
)

NAME = "exchange faults"
TIMEFRAMES = ("1h", "4h", "1d")
DELAY_S = 0.3  # a hang's length before the connection is closed unanswered
SHARES = {"ingest": 0.4, "live": 0.3, "orders": 0.3}  # of the faults asked for
BURST = 0.12  # the share of steps that also get a burst of faults past the retry bound


@dataclass
class PathTally:
    """One path's figures: faults served by kind, faults survived, steps run again."""

    faults: dict[str, int] = field(default_factory=dict)
    survived: int = 0
    reruns: int = 0
    steps: int = 0
    lost: list[str] = field(default_factory=list)

    @property
    def served(self) -> int:
        return sum(self.faults.values())

    def add(self, plan: FaultPlan, before: dict[str, int], ok: bool) -> None:
        """The faults `plan` served since it had served `before`; survived when `ok`."""
        for kind, n in plan.drawn.items():
            new = n - before.get(kind, 0)
            self.faults[kind] = self.faults.get(kind, 0) + new
            if ok:
                self.survived += new


def mixed(share: float, seed: int, path: str | None = None) -> FaultPlan:
    return FaultPlan(kinds=FAULT_KINDS, share=share, seed=seed, delay_s=DELAY_S, path=path)


def _same(stored, expected, what: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Row by row: timestamps exactly, prices and volumes exactly (1h) or to 1e-12 (sums)."""
    if len(stored) != len(expected):
        return [f"{what}: {len(stored)} rows stored, the source has {len(expected)}"]
    if not (stored["timestamp"].to_numpy() == expected["timestamp"].to_numpy()).all():
        return [f"{what}: timestamps differ from the source"]
    cols = ["open", "high", "low", "close", "volume"]
    if not np.allclose(stored[cols].to_numpy(), expected[cols].to_numpy(), rtol=1e-12, atol=0):
        return [f"{what}: values differ from the source"]
    return []


def _served_as_counted(tally: PathTally, exchange: ReplayExchange, path: str) -> None:
    """The plans' tallies are the replay's own count of faults served (its answers)."""
    if tally.served != exchange.faults_served:
        tally.lost.append(
            f"{path}: {tally.served} faults tallied, the exchange served {exchange.faults_served}"
        )


def _closed(frame, timeframe: str, before_ms: int, since_ms: int = 0):  # type: ignore[no-untyped-def]
    step = timeframe_ms(timeframe)
    keep = (frame["timestamp"] + step <= before_ms) & (frame["timestamp"] >= since_ms)
    return frame[keep].reset_index(drop=True)


# -- (a) ingest -----------------------------------------------------------------------------
def ingest_path(
    db: Database, _url: str, data_dir: Path, target: int, rng: random.Random
) -> PathTally:
    """Rounds of ingest as the replay clock moves on, faults on the candle pages."""
    from pipeline.data.ingest import ingest_partition
    from pipeline.data.sources import open_source
    from pipeline.exchange.retry import ExchangeSourceError, RetryPolicy
    from pipeline.replay.clock import ReplayClock
    from pipeline.store.candles import load_candles

    tally = PathTally()
    folder = CandleFolder(data_dir)
    symbols = folder.symbols()
    since = parse_date_ms("2023-01-01")
    clock = ReplayClock(since + 30 * 24 * H, speed=1e-9)
    with ReplayServer(ReplayExchange(data_dir, clock)) as server:
        source = open_source(
            "ccxt",
            trial_exchange(),
            server.url,
            retry=RetryPolicy(attempts=5, backoff_s=0.02),
            timeout_ms=2_000,
        )
        source.exchange.enableRateLimit = False
        source.page_limit = 200  # type: ignore[attr-defined]  # more pages: more requests to fault
        # One deck of kinds for the path.
        plan = mixed(0.15, rng.randrange(1 << 30), dialect(trial_exchange()).klines)
        while tally.served < target:
            for symbol in symbols:
                for timeframe in TIMEFRAMES:
                    before = dict(plan.drawn)
                    # Past the retry bound (always on the second step): the step fails.
                    if tally.steps == 1 or rng.random() < BURST:
                        plan.count = 5
                    server.exchange.set_faults(plan)
                    for _ in range(20):  # a failed ingest is run again, as the next run would
                        try:
                            ingest_partition(db, source, symbol, timeframe, since)
                            break
                        except ExchangeSourceError:
                            tally.reruns += 1
                    server.exchange.set_faults(None)
                    plan.count = 0
                    tally.steps += 1
                    with db.connection() as conn:
                        stored = load_candles(conn, trial_exchange(), symbol, timeframe)
                        conn.commit()
                    expected = _closed(
                        folder.read(symbol, timeframe), timeframe, clock.now_ms(), since
                    )
                    problems = _same(stored, expected, f"ingest {symbol} {timeframe}")
                    tally.lost.extend(problems)
                    tally.add(plan, before, not problems)
            clock.set(clock.now_ms() + rng.randint(1, 72) * H, 1e-9)  # the next round
        _served_as_counted(tally, server.exchange, "ingest")
    return tally


# -- (b) the live refresh -----------------------------------------------------------------------
def live_path(
    db: Database, database_url: str, data_dir: Path, target: int, rng: random.Random
) -> PathTally:
    """The real sensor and live job, candle by candle, faults on the candle pages."""
    from pipeline.partitions import SYMBOLS_BY_MARKET_ID
    from pipeline.replay.clock import ReplayClock
    from pipeline.sensors import run_key
    from pipeline.store.candles import load_candles
    from pipeline.trading_replay import LiveReplay, replay_resources, seed_candles
    from resources.exchange import CandleSourceResource
    from tests.helpers.live import LIVE_START, install_random_model

    tally = PathTally()
    folder = CandleFolder(data_dir)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    seed_candles(db, folder, trial_exchange(), symbols, list(TIMEFRAMES), LIVE_START)
    install_random_model(db, symbols, list(TIMEFRAMES), exchange=trial_exchange())
    exchange = ReplayExchange(data_dir, ReplayClock(LIVE_START, speed=1.0))
    with (
        tempfile.TemporaryDirectory(prefix="signals-trial-live-") as home,
        ReplayServer(exchange) as server,
    ):
        resources = replay_resources(
            database_url,
            server.url,
            home,
            exchange=trial_exchange(),
            since="2020-10-01",
            retry_attempts=4,
            retry_backoff_s=0.02,
        )
        resources["candle_source"] = CandleSourceResource(
            source="ccxt",
            exchange=trial_exchange(),
            api_url=server.url,
            since="2020-10-01",
            retry_attempts=4,
            retry_backoff_s=0.02,
            timeout_ms=2_000,
        )
        replay = LiveReplay(resources, exchange)
        close = LIVE_START
        plan = mixed(0.25, rng.randrange(1 << 30), dialect(trial_exchange()).klines)
        while tally.served < target:
            close += H
            before = dict(plan.drawn)
            wanted = {run_key(m, TIMEFRAME, close - H): m for m in SYMBOLS_BY_MARKET_ID}
            failed: set[str] = set()
            # Past the retry bound (always on the first candle): the sensor evaluated without
            # faults, then a burst the runs' retries cannot outlast, so a run fails.
            if tally.steps == 0 or rng.random() < BURST:
                failed |= _tick_with_burst(replay, exchange, plan, close, 60_000)
            exchange.set_faults(plan)
            after_ms = 60_000
            for _ in range(10):  # a tick the faults made skip is followed by the next tick
                if all(replay.launched(key) for key in wanted):
                    break
                outcome = replay.tick(close, after_ms=after_ms)
                failed |= set(outcome.failures)
                after_ms += 30_000
            exchange.set_faults(None)
            plan.count = 0
            for key in sorted(failed):  # a failed run is run again (the next run of the key)
                tally.reruns += 1
                market = wanted[key]
                config = {"market": market, "timeframe": TIMEFRAME, "candle_ms": close - H}
                run = replay.job.execute_in_process(
                    run_config={"ops": {"live_signal": {"config": config}}},
                    instance=replay.instance,
                    raise_on_error=False,
                )
                if not run.success:
                    tally.lost.append(f"live {key}: failed again without faults")
            tally.steps += 1
            problems = [f"live {k}: never launched" for k in wanted if not replay.launched(k)]
            with db.connection() as conn:
                for market, symbol in SYMBOLS_BY_MARKET_ID.items():
                    n = conn.execute(
                        """SELECT count(*) FROM signals WHERE symbol = %s AND timeframe = %s
                           AND candle_time = to_timestamp(%s / 1000.0) AND mode = 'production'""",
                        (symbol, TIMEFRAME, close - H),
                    ).fetchone()[0]
                    if n != 1:
                        problems.append(f"live {market} {close - H}: {n} decisions, not one")
                    for timeframe in TIMEFRAMES:
                        stored = load_candles(conn, trial_exchange(), symbol, timeframe)
                        expected = _closed(folder.read(symbol, timeframe), timeframe, close)
                        problems += _same(stored, expected, f"live {symbol} {timeframe}")
                conn.commit()
            tally.lost.extend(problems)
            tally.add(plan, before, not problems)
        _served_as_counted(tally, exchange, "live")
    return tally


def _tick_with_burst(replay, exchange, plan: FaultPlan, close: int, after_ms: int) -> set[str]:  # type: ignore[no-untyped-def]
    """`LiveReplay.tick` with the faults held back until the sensor has asked for its runs,
    then a burst of 8 on the candle pages (the source tries 4 times): the first run gives up.
    Returns the run keys that failed."""
    from pipeline.trading_replay import RUN_KEY_TAG

    exchange.clock.set(close + after_ms, speed=1.0)
    result = replay.evaluate_sensor()
    plan.count = 8
    exchange.set_faults(plan)
    failed = set()
    for request in result.run_requests or []:
        if replay.launched(request.run_key):
            continue
        run = replay.job.execute_in_process(
            run_config=request.run_config,
            tags={**request.tags, RUN_KEY_TAG: request.run_key},
            instance=replay.instance,
            raise_on_error=False,
        )
        if not run.success:
            failed.add(request.run_key)
    if result.cursor is not None:
        replay.cursor = result.cursor
    exchange.set_faults(None)
    plan.count = 0
    return failed


# -- (c) order placement --------------------------------------------------------------------
def orders_path(
    db: Database, _url: str, data_dir: Path, target: int, rng: random.Random
) -> PathTally:
    """Signals executed through the manager and the ccxt broker, faults on every signed call."""
    from pipeline.exchange.retry import RetryPolicy
    from pipeline.execution.broker import BrokerError
    from pipeline.execution.ccxt_broker import CcxtBroker
    from pipeline.execution.manager import PositionManager
    from pipeline.execution.risk import RiskConfig

    tally = PathTally()
    markets = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
    t0 = parse_date_ms("2023-03-01T10:00:00Z")
    model_id = save_trial_model(db)
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    with replay_exchange(data_dir, t0) as server:
        broker = CcxtBroker.from_env(
            trial_exchange(),
            api_url=server.url,
            timeout_ms=2_000,
            retry=RetryPolicy(attempts=5, backoff_s=0.02),
            environ=env,
        )
        broker.exchange.enableRateLimit = False
        manager = PositionManager(
            db, broker, RiskConfig(risk_fraction=0.05, leverage=2), trial_exchange(), TIMEFRAME, H
        )
        step = 0
        plan = mixed(0.12, rng.randrange(1 << 30))  # every path: reads, settings, orders
        while tally.served < target:
            symbol = markets[step % len(markets)]
            candle = t0 + (step // len(markets)) * H
            side = rng.choice((1, -1, 0))
            signal = record_side(db, model_id, symbol, candle, side)
            now_ms = candle + H + 60_000
            server.exchange.clock.set(now_ms, 1e-9)
            before = dict(plan.drawn)
            # Past the retry bound (always on the second step): the execution fails.
            if step == 1 or rng.random() < BURST:
                plan.count = 2 * 5
            server.exchange.set_faults(plan)
            problems = []
            for attempt in range(20):
                if attempt == 1:
                    tally.reruns += 1
                try:
                    done = manager.execute(signal, now_ms=now_ms)
                except BrokerError:
                    continue  # the next run
                if done.action == "mismatch":
                    problems.append(f"orders {symbol} {candle}: {done.note}")
                break
            server.exchange.set_faults(None)
            plan.count = 0
            step += 1
            tally.steps += 1
            position = server.exchange.account.snapshot()["positions"].get(market_id(symbol))
            held = 0 if not position else (1 if position["qty"] > 0 else -1)
            if held != side:
                problems.append(f"orders {symbol} {candle}: holds {held}, the signal {side}")
            problems += book_against_exchange(db, server, trial_exchange())
            tally.lost.extend(problems)
            tally.add(plan, before, not problems)
        _served_as_counted(tally, server.exchange, "orders")
    return tally


def run_trial(
    faults: int = 100,
    seed: int = 0,
    data_dir: Path = SAMPLE_DIR,
    database_url: str | None = None,
    progress: bool = False,
    exchange: str = "binanceusdm",
) -> TrialOutcome:
    """At least `faults` faults served across ingest, the live refresh and order placement,
    every client speaking `exchange`'s dialect."""
    with speaking(exchange):
        return _run_trial(faults, seed, data_dir, database_url, progress, exchange)


def _run_trial(
    faults: int,
    seed: int,
    data_dir: Path,
    database_url: str | None,
    progress: bool,
    exchange: str,
) -> TrialOutcome:
    rng = random.Random(seed)
    targets = {name: max(1, math.ceil(faults * share)) for name, share in SHARES.items()}
    tallies: dict[str, PathTally] = {}
    timings: dict[str, float] = {}

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    with trial_server(database_url) as server:
        for name, path in (("ingest", ingest_path), ("live", live_path), ("orders", orders_path)):
            with fresh_trial_database(server) as url:  # each path on an empty store
                db = Database(url)
                try:
                    started = time.perf_counter()
                    say(f"({name}) {targets[name]} faults …")
                    tallies[name] = path(db, url, data_dir, targets[name], rng)
                    timings[name] = time.perf_counter() - started
                    say(f"   {tallies[name].served} served, {len(tallies[name].lost)} lost")
                finally:
                    db.close()
    by_kind: dict[str, int] = {}
    for tally in tallies.values():
        for kind, n in tally.faults.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    return TrialOutcome(
        name=NAME,
        cases=sum(t.served for t in tallies.values()),
        survived=sum(t.survived for t in tallies.values()),
        lost=[what for t in tallies.values() for what in t.lost],
        command=f"python -m trials.exchange_faults --faults {faults} --seed {seed}"
        + exchange_flag(exchange),
        details={
            "faults by path": {name: t.served for name, t in tallies.items()},
            "faults by kind": dict(sorted(by_kind.items())),
            "steps by path": {name: t.steps for name, t in tallies.items()},
            "steps run again after the bound": {name: t.reruns for name, t in tallies.items()},
            "seconds by path": {name: round(s, 1) for name, s in timings.items()},
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trials.exchange_faults",
        description="Exchange faults of every kind over HTTP across ingest, the live refresh "
        "and order placement; nothing lost or duplicated (see the module doc).",
    )
    parser.add_argument("--faults", type=int, default=100, help="faults to serve (100)")
    parser.add_argument("--data-dir", type=Path, default=SAMPLE_DIR, help="candle folder")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to make fresh databases on (default: an embedded server "
        "in a temporary folder)",
    )
    add_common_arguments(parser)
    opts = parser.parse_args(argv)
    return run_and_report(
        lambda: run_trial(
            opts.faults, opts.seed, opts.data_dir, opts.database_url, True, opts.exchange
        ),
        opts.json,
    )


if __name__ == "__main__":
    sys.exit(main())
