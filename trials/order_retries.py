"""Order retries at random points of placement: the answer lost (the order carried out, no
answer: a hang, a reset, a cut body, a body that is not JSON), a 5xx or 429, a time-out or a
reset before the order is carried out, the retry bound passed (the row left 'unknown'), and
the PROCESS KILLED (SIGKILL) after the `orders` row is written, while its order hangs at the
exchange (carried out or not).

Signals are executed by a child process (`PositionManager` + `CcxtBroker` through ccxt over
HTTP against the replay exchange, the book in PostgreSQL), one signal per market and candle,
random sides. A fault is set on the order request (POST /fapi/v1/order; with `--exchange bybit`,
ccxt's bybit client and POST /v5/order/create) before a step that trades, on its first or
second order at random; a step that fails (the bound passed) is run again, as the next run
would; a killed child is replaced by a fresh process that runs the step again.

After every step and at the end: each client order id placed at most once at the exchange,
every order the signals called for placed exactly once, each held side the signal's side, the
book (positions, orders, fills) equal to the exchange. Cases: faults served plus kills.

    python -m trials.order_retries --retries 50 --kills 10 [--exchange bybit]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.timeframes import parse_date_ms
from pipeline.replay.dialects import dialect
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from trials.outcome import TrialOutcome, add_common_arguments, run_and_report
from trials.replay_desk import (
    KEY,
    REPO,
    SAMPLE_DIR,
    SECRET,
    TIMEFRAME,
    H,
    book_against_exchange,
    exchange_flag,
    market_id,
    record_side,
    replay_exchange,
    save_trial_model,
    speaking,
    trial_database,
    trial_exchange,
)

NAME = "order retries"
MARKETS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
T0 = parse_date_ms("2023-03-01T10:00:00Z")
# Faults on the order request; after the first four the order was carried out unanswered.
KINDS = ("lost", "reset_after", "truncated", "malformed_json", "500", "429", "timeout", "reset")
ATTEMPTS = 4  # the child broker's retry bound
TIMEOUT_MS = 500  # the child's HTTP time-out; a kill step waits longer (it is killed first)
RESULT = "RESULT "


# -- the child: executes signals as the live job does ----------------------------------------
def serve_steps(database_url: str, exchange_url: str) -> None:
    """Read one step a line on stdin ({signal_id, now_ms, timeout_ms, …}), execute its
    recorded signal, answer one RESULT line on stdout. Logs go to stderr."""
    import logging

    from pipeline.exchange.retry import RetryPolicy
    from pipeline.execution.broker import BrokerError
    from pipeline.execution.ccxt_broker import CcxtBroker
    from pipeline.execution.manager import PositionManager
    from pipeline.execution.risk import RiskConfig
    from pipeline.store.database import Database

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    db = Database(database_url)
    broker = CcxtBroker.from_env(
        trial_exchange(),  # SIGNALS_EXCHANGE, set by the parent
        api_url=exchange_url,
        timeout_ms=TIMEOUT_MS,
        retry=RetryPolicy(attempts=ATTEMPTS, backoff_s=0.02),
    )
    broker.exchange.enableRateLimit = False
    risk = RiskConfig(risk_fraction=0.05, leverage=2)
    manager = PositionManager(db, broker, risk, trial_exchange(), TIMEFRAME, H)
    print(RESULT + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        step = json.loads(line)
        broker.exchange.timeout = step["timeout_ms"]
        row = signal_row(db, step["signal_id"])
        try:
            done = manager.execute(row, now_ms=step["now_ms"])
            answer = {"ok": True, "action": done.action, "note": done.note}
        except BrokerError as err:
            answer = {"ok": False, "error": str(err)}
        print(RESULT + json.dumps(answer), flush=True)


def signal_row(db, signal_id: int):  # type: ignore[no-untyped-def]
    """The recorded signal as the live job hands it on (read, not re-decided: no torch)."""
    from pipeline.store.signals import SignalRow

    with db.connection() as conn:
        r = conn.execute(
            """SELECT id, model_id, exchange, symbol, timeframe,
                      (extract(epoch FROM candle_time) * 1000)::bigint, probability_up, side,
                      input_hash, mode
               FROM signals WHERE id = %s""",
            (signal_id,),
        ).fetchone()
        conn.commit()
    return SignalRow(
        id=r[0],
        model_id=r[1],
        exchange=r[2],
        symbol=r[3],
        timeframe=r[4],
        candle_ms=int(r[5]),
        probability_up=float(r[6]),
        side=int(r[7]),
        input_hash=r[8],
        created=False,
        mode=r[9],
    )


class Worker:
    """A child process serving steps; started ahead, so a kill costs no wait for imports."""

    def __init__(self, database_url: str, exchange_url: str, log: Path):
        env = {
            **os.environ,
            "SIGNALS_API_KEY": KEY,
            "SIGNALS_API_SECRET": SECRET,
            "PYTHONPATH": str(REPO),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trials.order_retries",
                "--serve-steps",
                database_url,
                exchange_url,
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
        )
        self.ready = False

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        raise RuntimeError(f"the step process ended (exit {self.proc.wait()})")

    def wait_ready(self) -> None:
        if not self.ready:
            assert self._answer().get("ready")
            self.ready = True

    def send(self, step: dict) -> None:
        self.wait_ready()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(step) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        return self._answer()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the parent: plans faults and kills, checks the book ----------------------------------------
@dataclass
class Tally:
    faults: dict[str, int] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=dict)
    reruns: int = 0
    past_bound: int = 0
    steps: int = 0
    survived: int = 0
    lost: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.faults.values()) + sum(self.kills.values())


def expected_orders(model_id: int, symbol: str, candle: int, before: int, after: int) -> list[str]:
    """The client order ids a change of side calls for: a close, then an open."""
    from pipeline.execution.orders import client_order_id

    def cid(purpose: str) -> str:
        exchange = trial_exchange()
        return client_order_id(exchange, exchange, symbol, TIMEFRAME, candle, model_id, purpose)

    return ([cid("close")] if before else []) + ([cid("open")] if after else [])


def _sign(quantity: float) -> int:
    return 0 if abs(quantity) < 1e-12 else (1 if quantity > 0 else -1)


def _wait_for(condition, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Trial:
    def __init__(self, server: ReplayServer, db, database_url: str, log: Path, seed: int):  # type: ignore[no-untyped-def]
        self.server, self.db, self.database_url, self.log = server, db, database_url, log
        self.exchange = server.exchange
        self.order_path = dialect(trial_exchange()).order
        self.rng = random.Random(seed)
        self.model_id = save_trial_model(db)
        self.worker = self._spawn()
        self.spare = self._spawn()
        self.tally = Tally()
        self.expected: set[str] = set()

    def _spawn(self) -> Worker:
        return Worker(self.database_url, self.server.url, self.log)

    def close(self) -> None:
        self.worker.stop()
        self.spare.kill()  # it never ran a step: no need to wait for its imports

    def held(self, symbol: str) -> int:
        position = self.exchange.account.snapshot()["positions"].get(market_id(symbol))
        return _sign(position["qty"]) if position else 0

    def _run(self, step: dict) -> dict:
        self.worker.send(step)
        return self.worker.result()

    def _kill_during(self, step: dict, kind: str, skip: int) -> str:
        """Send the step with its order hanging at the exchange; SIGKILL the child there."""
        plan = FaultPlan(
            kind=kind, count=1, delay_s=10.0, path=self.order_path, method="POST", skip=skip
        )
        served = self.exchange.faults_served
        attempts = sum(self.exchange.account.counters.attempts.values())
        self.exchange.set_faults(plan)
        self.worker.send({**step, "timeout_ms": 60_000})
        _wait_for(lambda: self.exchange.faults_served > served, "the order to hang")
        if kind == "lost":  # carried out before it hangs: wait until it is
            _wait_for(
                lambda: sum(self.exchange.account.counters.attempts.values()) > attempts,
                "the order to be carried out",
            )
        self.worker.kill()
        self.exchange.set_faults(None)
        with self.db.connection() as conn:
            statuses = [
                r[0]
                for r in conn.execute(
                    "SELECT status FROM orders WHERE status NOT IN ('filled', 'rejected')"
                ).fetchall()
            ]
            conn.commit()
        self.worker, self.spare = self.spare, self._spawn()
        where = "carried out" if kind == "lost" else "not carried out"
        if statuses != ["sent"]:
            self.tally.lost.append(
                f"kill during {step}: order rows left {statuses}, not one 'sent'"
            )
        return f"order row sent, order {where}"

    def step(self, symbol: str, candle: int, side: int, kill_share: float) -> None:
        before = self.held(symbol)
        signal = record_side(self.db, self.model_id, symbol, candle, side)
        now_ms = candle + H + 60_000
        self.exchange.clock.set(now_ms, 1e-9)
        step = {
            "symbol": symbol,
            "candle_ms": candle,
            "side": side,
            "signal_id": signal.id,
            "now_ms": now_ms,
            "timeout_ms": TIMEOUT_MS,
        }
        orders = (
            expected_orders(self.model_id, symbol, candle, before, side) if before != side else []
        )
        self.expected.update(orders)
        served = self.exchange.faults_served
        kills: list[str] = []
        result: dict = {"ok": False}
        if orders:
            skip = self.rng.randrange(len(orders))
            if self.rng.random() < kill_share:
                kind = self.rng.choice(("lost", "timeout"))
                kills.append(self._kill_during(step, kind, skip))
                served = self.exchange.faults_served  # the kill's hang is counted as the kill
            elif self.rng.random() < 0.1:  # past the bound: every send and look-up fails
                kind = self.rng.choice(("500", "lost"))
                self.exchange.set_faults(
                    FaultPlan(kind=kind, count=2 * ATTEMPTS + 1, delay_s=0.05, path=self.order_path)
                )
                self.tally.past_bound += 1
                result = self._run(step)
            else:
                kind = self.rng.choice(KINDS)
                count = self.rng.choice((1, 1, 1, 2))
                plan = FaultPlan(
                    kind=kind,
                    count=count,
                    delay_s=0.8,
                    path=self.order_path,
                    method="POST",
                    skip=skip,
                )
                self.exchange.set_faults(plan)
                result = self._run(step)
            self.exchange.set_faults(None)
        else:
            result = self._run(step)
        faults = self.exchange.faults_served - served
        while not result.get("ok"):  # failed past the bound, or killed: the next run
            self.tally.reruns += 1
            result = self._run(step)
            if not result.get("ok") and self.tally.reruns > 10 * (self.tally.steps + 1):
                self.tally.lost.append(f"{symbol} {candle}: never completed: {result}")
                break
        self.tally.steps += 1
        if faults:
            self.tally.faults[kind] = self.tally.faults.get(kind, 0) + faults
        for k in kills:
            self.tally.kills[k] = self.tally.kills.get(k, 0) + 1
        problems = book_against_exchange(self.db, self.server, trial_exchange())
        if self.held(symbol) != side:
            problems.append(f"{symbol} {candle}: holds side {self.held(symbol)}, signal {side}")
        if result.get("ok") and result.get("action") not in (
            "opened",
            "closed",
            "reversed",
            "held",
            "none",
        ):
            problems.append(f"{symbol} {candle}: action {result.get('action')}: {result}")
        placed = set(self.exchange.account.snapshot()["placements"])
        missing = sorted(set(orders) - placed)
        if missing:
            problems.append(f"{symbol} {candle}: orders never placed: {missing}")
        if problems:
            self.tally.lost.extend(problems)
        else:
            self.tally.survived += faults + len(kills)


def run_trial(
    retries: int = 50,
    kills: int = 10,
    seed: int = 0,
    data_dir: Path = SAMPLE_DIR,
    database_url: str | None = None,
    progress: bool = False,
    exchange: str = "binanceusdm",
) -> TrialOutcome:
    """Inject at least `retries` order faults and `kills` child-process kills at random
    points of placement; every case must leave the book equal to the exchange. The broker
    speaks `exchange`'s dialect."""
    with speaking(exchange):
        return _run_trial(retries, kills, seed, data_dir, database_url, progress, exchange)


def _run_trial(
    retries: int,
    kills: int,
    seed: int,
    data_dir: Path,
    database_url: str | None,
    progress: bool,
    exchange: str,
) -> TrialOutcome:
    rng = random.Random(seed)
    with trial_database(database_url) as url, replay_exchange(data_dir, T0) as server:
        from pipeline.store.database import Database

        db = Database(url)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"order-retries-{os.getpid()}.log"
        trial = Trial(server, db, url, log, seed)
        try:
            step = 0
            while True:
                done_kills = sum(trial.tally.kills.values())
                done_faults = sum(trial.tally.faults.values())
                if done_kills >= kills and done_faults >= retries:
                    break
                if step > 40 * (retries + kills) + 100:
                    trial.tally.lost.append("the trial could not inject what was asked")
                    break
                # Kills spread over the faults: a share such that both counts end together.
                left_kills, left_faults = kills - done_kills, max(retries - done_faults, 0)
                share = left_kills / (left_kills + left_faults) if left_kills > 0 else 0.0
                symbol = MARKETS[step % len(MARKETS)]
                candle = T0 + (step // len(MARKETS)) * H
                trial.step(symbol, candle, rng.choice((1, -1, 0)), share)
                step += 1
                if progress and step % 30 == 0:
                    print(
                        f"  {step} steps, {trial.tally.cases} cases ({done_faults} faults, "
                        f"{done_kills} kills), {len(trial.tally.lost)} lost",
                        flush=True,
                    )
            placed = set(server.exchange.account.snapshot()["placements"])
            if placed != trial.expected:
                extra, missing = sorted(placed - trial.expected), sorted(trial.expected - placed)
                trial.tally.lost.append(f"placed {extra} not called for; {missing} never placed")
            trial.tally.lost.extend(book_against_exchange(db, server, trial_exchange()))
        finally:
            trial.close()
            db.close()
    tally = trial.tally
    if not tally.lost:  # kept when something was lost, for whoever reads the losses
        log.unlink(missing_ok=True)
    return TrialOutcome(
        name=NAME,
        cases=tally.cases,
        survived=tally.survived,
        lost=tally.lost,
        command=f"python -m trials.order_retries --retries {retries} --kills {kills} --seed {seed}"
        + exchange_flag(exchange),
        details={
            "faults by kind": dict(sorted(tally.faults.items())),
            "kills by point": tally.kills,
            "steps (signals executed)": tally.steps,
            "steps past the retry bound": tally.past_bound,
            "steps run again (failed or killed)": tally.reruns,
            "orders placed": len(trial.expected),
            **({"step processes' log": str(log)} if tally.lost else {}),
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve-steps"]:  # the child process
        serve_steps(args[1], args[2])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m trials.order_retries",
        description="Order faults and SIGKILLs at random points of placement; each client "
        "order id placed once, the book equal to the exchange (see the module doc).",
    )
    parser.add_argument("--retries", type=int, default=50, help="order faults to serve (50)")
    parser.add_argument("--kills", type=int, default=10, help="child processes to kill (10)")
    parser.add_argument("--data-dir", type=Path, default=SAMPLE_DIR, help="candle folder")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to make a fresh database on (default: an "
        "embedded server in a temporary folder)",
    )
    add_common_arguments(parser)
    opts = parser.parse_args(args)
    return run_and_report(
        lambda: run_trial(
            opts.retries,
            opts.kills,
            opts.seed,
            opts.data_dir,
            opts.database_url,
            progress=True,
            exchange=opts.exchange,
        ),
        opts.json,
    )


if __name__ == "__main__":
    sys.exit(main())
