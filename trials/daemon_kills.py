"""Daemon kills: a live replay driven by the real `dagster-daemon`, killed again and again.

The deployment is the Dockerfile's: a code server (`dagster code-server start -m
pipeline.definitions`), a daemon (`dagster-daemon run`) whose workspace points at it, and the
repository's deployed instance (`dagster.yaml`: PostgreSQL storage, QueuedRunCoordinator, run
retries) stored in an embedded PostgreSQL. `new_candle_sensor` is on; the replay exchange
serves the sample candles over HTTP (ccxt) and a seeded random model is in production.

The trial moves the exchange's clock one candle at a time (the next candle closes once every
market's run of this one succeeded: a candle decided after the next one closed is recorded
but not traded, by design, which would break parity with the backtest). Meanwhile it
SIGKILLs the daemon at random moments (restarting it after a random pause, sometimes with the
sensor's cursor restored to an older save, so the sensor asks again for candles that already
ran), and SIGKILLs random run workers (the code server's `spawn_main` children). Run keys are
deduplicated by Dagster only: nothing here skips a key.

Afterwards it checks, from the databases: exactly one successful Dagster run per run key,
exactly one production signal per candle and market, one order per signal and purpose with
distinct client order ids each placed once at the (paper) exchange, and each market's
decisions and trades equal to its backtest's (`pipeline.trading_replay.parity`).

`--bypass-dedup` starts the daemon with Dagster's run-key lookup disabled: a demonstration
that the checks fail when Dagster's deduplication is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from trials.outcome import TrialOutcome, add_common_arguments, run_and_report
from trials.replay_desk import exchange_flag, speaking, trial_exchange

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO.parent / "shared" / "data" / "binance-usdm-1h"
LOCATION = "futures_signals"
SENSOR = "new_candle_sensor"
JOB = "live_inference_job"
RUN_KEY_TAG = "dagster/run_key"
PARENT_RUN_TAG = "dagster/parent_run_id"  # set on a retry of a failed run
TIMEFRAMES = ["1h", "4h", "1d"]
RISK, FEE, BALANCE = 0.5, 0.0005, 10_000.0
DEFAULT_MARKETS = ("BTCUSDT", "ETHUSDT")
# A barrier model for `--barrier`: tight levels and a short time limit, so that stops,
# take-profits, time exits and re-arms all happen within a trial's candles.
BARRIER_RULE = {"horizon": 4, "barrier_k": 1.0, "margin": 0.0, "cost": 0.001, "vol_window": 48}
STEP_TIMEOUT_S = 420.0  # a candle whose runs have not all succeeded by then is reported lost
# The daemon with Dagster's run-key lookup switched off (the demonstration of a failing check).
BYPASS_DEDUP = (
    "import sys, dagster._daemon.sensor as s\n"
    "s.fetch_existing_runs = lambda *args, **kwargs: {}\n"
    "from dagster._daemon.cli import main\n"
    "sys.argv[0] = 'dagster-daemon'\n"
    "sys.exit(main())\n"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_group(process: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)


@dataclass
class Deployment:
    """Code server + daemon on a Dagster home whose instance is the repository's dagster.yaml."""

    root: Path
    env: dict[str, str]
    bypass_dedup: bool = False
    port: int = field(default_factory=_free_port)
    code_server: subprocess.Popen | None = None
    daemon: subprocess.Popen | None = None
    daemon_starts: int = 0

    def __post_init__(self) -> None:
        self.home = self.root / "dagster"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        self.workspace = self.home / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.port}\n      location_name: {LOCATION}\n"
        )
        self.env = {**self.env, "DAGSTER_HOME": str(self.home)}

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen:
        out = (self.root / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own: a kill reaches it alone
            )
        finally:
            out.close()

    def start_code_server(self, timeout: float = 240) -> None:
        command = [sys.executable, "-m", "dagster", "code-server", "start"]
        command += ["-h", "127.0.0.1", "-p", str(self.port), "-m", "pipeline.definitions"]
        self.code_server = self._spawn(command, "code-server")
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(port=self.port, host="127.0.0.1")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.code_server.poll() is not None:
                raise RuntimeError(f"code server exited: {self.tail('code-server')}")
            with contextlib.suppress(Exception):
                client.ping("ready?")
                if self._cli(["sensor", "list", "-w", str(self.workspace)]) == 0:
                    return
            time.sleep(1.0)
        raise RuntimeError(f"code server not ready in {timeout:.0f} s: {self.tail('code-server')}")

    def _cli(self, args: list[str]) -> int:
        done = subprocess.run(
            [sys.executable, "-m", "dagster", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode

    def start_sensor(self) -> None:
        code = self._cli(["sensor", "start", SENSOR, "-w", str(self.workspace)])
        if code != 0:
            raise RuntimeError(f"`dagster sensor start {SENSOR}` failed ({code})")

    def start_daemon(self) -> None:
        if self.bypass_dedup:
            command = [sys.executable, "-c", BYPASS_DEDUP]
        else:
            command = [str(Path(sys.executable).parent / "dagster-daemon")]
        self.daemon = self._spawn([*command, "run", "-w", str(self.workspace)], "daemon")
        self.daemon_starts += 1

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        os.kill(self.daemon.pid, signal.SIGKILL)
        self.daemon.wait(timeout=20)
        self.daemon = None

    def run_workers(self) -> list[psutil.Process]:
        """The code server's run worker processes (multiprocessing `spawn_main` children)."""
        if self.code_server is None:
            return []
        try:
            children = psutil.Process(self.code_server.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        workers = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                command = " ".join(child.cmdline())
                if "spawn_main" in command and "resource_tracker" not in command:
                    workers.append(child)
        return workers

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.root / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        _kill_group(self.daemon, signal.SIGTERM)
        _kill_group(self.daemon)
        self.daemon = None
        for worker in self.run_workers():
            with contextlib.suppress(psutil.Error):
                worker.kill()
        _kill_group(self.code_server, signal.SIGTERM)
        _kill_group(self.code_server)
        self.code_server = None


@contextlib.contextmanager
def live_world(
    root: Path, markets: list[str], candles: int, label: dict | None = None
) -> Iterator[dict]:
    """Embedded PostgreSQL with a project database and Dagster's beside it, the history seeded
    up to LIVE_START, a random model in production (exiting by `label`'s rule when given: a
    barrier model), the replay exchange over HTTP."""
    import psycopg

    from pipeline.data.csv_source import CandleFolder
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.store.dagster_storage import dagster_storage_url
    from pipeline.store.database import Database
    from pipeline.store.embedded import embedded_url, stop_embedded
    from pipeline.trading_replay import seed_candles
    from tests.helpers.live import LIVE_START, install_random_model, live_folder

    pgdata = root / "pg"
    server_url = embedded_url(pgdata)
    name = f"trial_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    database_url = psycopg.conninfo.make_conninfo(**info)
    db = Database(database_url)
    server = None
    try:
        sample = CandleFolder(SAMPLE_DATA)
        frames = {
            m: sample.read(s) for m, s in zip(sample.market_ids(), sample.symbols(), strict=True)
        }
        folder = live_folder(root, {m: frames[m] for m in markets}, candles)
        symbols = [
            CandleFolder(folder).symbols()[CandleFolder(folder).market_ids().index(m)]
            for m in markets
        ]
        seed_candles(db, CandleFolder(folder), trial_exchange(), symbols, TIMEFRAMES, LIVE_START)
        model_id, _, _ = install_random_model(
            db, symbols, TIMEFRAMES, label=label, exchange=trial_exchange()
        )
        exchange = ReplayExchange(folder, ReplayClock(LIVE_START, speed=1.0))
        server = ReplayServer(exchange).start()
        yield {
            "db": db,
            "database_url": database_url,
            "dagster_url": dagster_storage_url(database_url),
            "exchange": exchange,
            "api_url": server.url,
            "folder": folder,
            "symbols": symbols,
            "model_id": model_id,
        }
    finally:
        if server is not None:
            server.stop()
        db.close()
        from pipeline.store.database import close_all

        close_all()
        stop_embedded(pgdata)


def deployment_env(world: dict, root: Path, symbols: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SIGNALS_HOME": str(root / "home"),
        "SIGNALS_DATABASE_URL": world["database_url"],
        "DAGSTER_PG_URL": world["dagster_url"],
        "SIGNALS_API_URL": world["api_url"],
        "SIGNALS_SOURCE": "ccxt",
        "SIGNALS_EXCHANGE": trial_exchange(),
        "SIGNALS_MARKETS": ",".join(symbols),
        "SIGNALS_TIMEFRAMES": ",".join(TIMEFRAMES),
        "SIGNALS_SINCE": "2020-10-01",
        "SIGNALS_SENSOR_INTERVAL_S": "1",
        "SIGNALS_ACCOUNT_PER_MARKET": "1",
        # The backtest's sizing, with no cap and no daily limit (it has neither).
        "SIGNALS_RISK_FRACTION": str(RISK),
        "SIGNALS_MAX_NOTIONAL": "1e15",
        "SIGNALS_DAILY_LOSS_LIMIT": "1.0",
        "OMP_NUM_THREADS": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


def _instance(home: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home))


def sensor_state(instance):
    from dagster._core.scheduler.instigation import InstigatorType

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return next(s for s in states if s.name == SENSOR)


def set_sensor_cursor(instance, cursor: str | None) -> None:
    state = sensor_state(instance)
    instance.update_instigator_state(state.with_data(state.instigator_data._replace(cursor=cursor)))


def runs_by_key(instance) -> dict[str | None, list]:
    import dagster as dg

    found: dict[str | None, list] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=JOB)):
        found.setdefault(run.tags.get(RUN_KEY_TAG), []).append(run)
    return found


def _succeeded(instance, keys: list[str]) -> bool:
    import dagster as dg

    for key in keys:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: key}))
        if not any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
            return False
    return True


def rerequested_keys(instance) -> set[str]:
    """Run keys the sensor asked for again in a later tick (Dagster recorded them skipped)."""
    state = sensor_state(instance)
    asked: Counter[str] = Counter()
    for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100_000):
        asked.update(set(tick.run_keys or []))
    return {key for key, times in asked.items() if times > 1}


def wait_for_tick_after(instance, timestamp: float, timeout: float = 90.0) -> None:
    """Until the sensor has finished a tick that started after `timestamp` (bounded)."""
    from dagster._core.scheduler.instigation import TickStatus

    deadline = time.monotonic() + timeout
    while timestamp and time.monotonic() < deadline:
        state = sensor_state(instance)
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
        if any(t.timestamp > timestamp and t.status != TickStatus.STARTED for t in ticks):
            return
        time.sleep(0.5)


def wait_until_idle(instance, timeout: float = STEP_TIMEOUT_S) -> None:
    """Until no live run is queued, starting or running (bounded)."""
    import dagster as dg
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = instance.get_runs(
            filters=dg.RunsFilter(job_name=JOB, statuses=IN_PROGRESS_RUN_STATUSES)
        )
        if not busy:
            return
        time.sleep(0.5)


@dataclass
class Verdict:
    """What the databases say after the replay."""

    lost: list[str]
    runs: int
    failed_runs: int
    successful_runs: int
    signals: int
    orders: int
    trades_compared: int
    bad_candles: set[int]


def verify(world: dict, instance, market_keys: dict[str, str], candles: list[int]) -> Verdict:
    """Runs, signals, orders and parity, each problem said in words."""
    import dagster as dg

    from pipeline.backtest.config import BacktestConfig
    from pipeline.data.csv_source import CandleFolder
    from pipeline.sensors import run_key
    from pipeline.trading_replay import parity, seed_candles
    from tests.helpers.live import HOUR

    lost: list[str] = []
    bad: set[int] = set()
    found = runs_by_key(instance)
    expected = {run_key(m, "1h", c): c for m in market_keys for c in candles}
    for key, candle in expected.items():
        runs = found.get(key, [])
        # Launched by the sensor: the runs that are not Dagster's retries of a failed one.
        launched = [r for r in runs if PARENT_RUN_TAG not in r.tags]
        wins = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        if len(launched) != 1:
            lost.append(f"run key {key}: launched {len(launched)} times")
            bad.add(candle)
        if len(wins) != 1:
            lost.append(f"run key {key}: {len(wins)} successful runs of {len(runs)}")
            bad.add(candle)
    for key, runs in found.items():
        if key not in expected:
            lost.append(f"{len(runs)} run(s) under an unexpected run key {key}")
    all_runs = [r for runs in found.values() for r in runs]
    db = world["db"]
    symbols = {m: s for m, s in market_keys.items()}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT symbol, (extract(epoch FROM candle_time) * 1000)::bigint, count(*) "
            "FROM signals WHERE mode = 'production' GROUP BY 1, 2"
        ).fetchall()
        order_stats = conn.execute(
            "SELECT count(*), count(DISTINCT client_order_id) FROM orders"
        ).fetchone()
        repeated = conn.execute(
            "SELECT signal_id, purpose, count(*) FROM orders GROUP BY signal_id, purpose "
            "HAVING count(*) > 1"
        ).fetchall()
        unplaced = conn.execute(
            "SELECT o.client_order_id, count(p.client_order_id) FROM orders o LEFT JOIN "
            "paper_orders p ON p.account = o.account AND p.client_order_id = o.client_order_id "
            "GROUP BY o.client_order_id HAVING count(p.client_order_id) <> 1"
        ).fetchall()
        conn.commit()
    counts = {(s, c): n for s, c, n in rows}
    for market, symbol in symbols.items():
        for candle in candles:
            n = counts.pop((symbol, candle), 0)
            if n != 1:
                lost.append(f"{market} candle {candle}: {n} production signals")
                bad.add(candle)
    for (symbol, candle), n in counts.items():
        lost.append(f"{symbol} candle {candle}: {n} signal(s) outside the replayed candles")
    total, distinct = order_stats
    if total != distinct:
        lost.append(f"orders: {total} rows but {distinct} distinct client order ids")
    lost += [f"signal {s} purpose {p}: {n} orders" for s, p, n in repeated]
    lost += [f"order {cid}: placed {n} times at the paper exchange" for cid, n in unplaced]
    lost += orphans(db)
    # The candle after the last decided one, as the backtest needs it to act on that decision.
    seed_candles(
        db,
        CandleFolder(world["folder"]),
        trial_exchange(),
        list(symbols.values()),
        TIMEFRAMES,
        candles[-1] + 2 * HOUR,
    )
    trades = 0
    for market, symbol in symbols.items():
        try:
            report = parity(
                db,
                trial_exchange(),
                symbol,
                "1h",
                TIMEFRAMES,
                candles,
                BacktestConfig(timeframe="1h", fee=FEE, position_size=RISK),
                f"paper-{market}",
                BALANCE,
            )
            if not report.identical_decisions:
                lost.append(f"{market}: decisions differ: {report.decision_mismatches[:3]}")
                bad.update(m["candle_ms"] for m in report.decision_mismatches)
            if not report.same_trades:
                lost.append(
                    f"{market}: trades differ from the backtest (live {len(report.live_trades)}, "
                    f"backtest-only {report.backtest_only_trades}, "
                    f"max diff {report.trade_max_abs_diff})"
                )
        except Exception as err:  # a parity that cannot be computed is a failure, said
            lost.append(f"{market}: no parity report: {type(err).__name__}: {err}")
            continue
        trades += report.trades_compared
    return Verdict(
        lost=lost,
        runs=len(all_runs),
        failed_runs=sum(r.status == dg.DagsterRunStatus.FAILURE for r in all_runs),
        successful_runs=sum(r.status == dg.DagsterRunStatus.SUCCESS for r in all_runs),
        signals=len(rows),
        orders=total,
        trades_compared=trades,
        bad_candles=bad,
    )


def orphans(db) -> list[str]:
    """Resting exits the paper broker holds without a position to protect, and positions
    without both their exits (a barrier model's), said in words; none without barriers."""
    with db.connection() as conn:
        resting = conn.execute(
            "SELECT account, symbol, kind, count(*) FROM paper_orders WHERE status = 'open' "
            "GROUP BY 1, 2, 3"
        ).fetchall()
        held = conn.execute(
            "SELECT account, symbol FROM paper_positions WHERE quantity <> 0"
        ).fetchall()
        barrier = conn.execute("SELECT count(*) FROM barrier_trades").fetchone()[0]
        conn.commit()
    kinds: dict[tuple[str, str], set[str]] = {}
    for account, symbol, kind, _ in resting:
        kinds.setdefault((account, symbol), set()).add(kind)
    problems = [
        f"{account} {symbol}: {sorted(k)} resting with no position"
        for (account, symbol), k in kinds.items()
        if (account, symbol) not in set(held)
    ]
    if barrier or resting:
        problems += [
            f"{account} {symbol}: position without both exits resting"
            for account, symbol in held
            if kinds.get((account, symbol)) != {"stop", "take_profit"}
        ]
    return problems


@dataclass
class Kill:
    kind: str  # daemon / worker
    candle_ms: int
    at_s: float  # seconds after the candle closed on the trial's clock
    note: str = ""


def run_trial(
    candles: int = 100,
    daemon_kills: int = 10,
    worker_kills: int = 10,
    cursor_restores: int = 3,
    seed: int = 0,
    markets: tuple[str, ...] = DEFAULT_MARKETS,
    *,
    bypass_dedup: bool = False,
    barrier: bool = False,
    progress: Callable[[str], None] = log,
    exchange: str = "binanceusdm",
) -> TrialOutcome:
    """Replay `candles` candles of each market through the real daemon, killing it
    `daemon_kills` times (`cursor_restores` of those restarts with an older sensor cursor)
    and `worker_kills` run workers; one case per kill. The deployment's ccxt clients speak
    `exchange`'s dialect to the replay exchange."""
    with speaking(exchange):
        outcome = _run_trial(
            candles,
            daemon_kills,
            worker_kills,
            cursor_restores,
            seed,
            markets,
            bypass_dedup=bypass_dedup,
            barrier=barrier,
            progress=progress,
        )
    outcome.command += exchange_flag(exchange)
    return outcome


def _run_trial(
    candles: int,
    daemon_kills: int,
    worker_kills: int,
    cursor_restores: int,
    seed: int,
    markets: tuple[str, ...],
    *,
    bypass_dedup: bool,
    barrier: bool,
    progress: Callable[[str], None],
) -> TrialOutcome:
    from tests.helpers.live import HOUR, LIVE_START

    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="trial-daemon-kills-"))
    command = (
        f"python -m trials.daemon_kills --candles {candles} --daemon-kills {daemon_kills} "
        f"--worker-kills {worker_kills} --cursor-restores {cursor_restores} --seed {seed} "
        f"--markets {','.join(markets)}"
        + (" --bypass-dedup" if bypass_dedup else "")
        + (" --barrier" if barrier else "")
    )
    outcome = TrialOutcome("daemon kills during live", 0, 0, command=command)
    steps = [LIVE_START + k * HOUR for k in range(candles)]
    # The first candle starts the sensor's cursor; kills are spread over the others.
    daemon_steps = set(rng.sample(range(1, candles), min(daemon_kills, candles - 1)))
    restore_steps = set(rng.sample(sorted(daemon_steps), min(cursor_restores, len(daemon_steps))))
    worker_steps = sorted(rng.sample(range(1, candles), min(worker_kills, candles - 1)))
    kills: list[Kill] = []
    with live_world(root, list(markets), candles, BARRIER_RULE if barrier else None) as world:
        from pipeline.sensors import run_key

        market_keys = dict(zip(markets, world["symbols"], strict=True))
        deployment = Deployment(root, deployment_env(world, root, world["symbols"]), bypass_dedup)
        os.environ["DAGSTER_PG_URL"] = world["dagster_url"]  # the instance opened here too
        try:
            progress(f"code server starting (imports the code location) in {root}")
            deployment.start_code_server()
            deployment.start_sensor()
            deployment.start_daemon()
            instance = _instance(deployment.home)
            cursors: list[str | None] = []  # the sensor's cursor after each candle
            worker_due = 0
            last_restart = 0.0
            started = time.monotonic()
            for k, candle in enumerate(steps):
                close = candle + HOUR
                world["exchange"].clock.set(close + 60_000, 1.0)
                t0 = time.monotonic()
                keys = [run_key(m, "1h", candle) for m in markets]
                worker_due += worker_steps.count(k)
                # A plain daemon kill lands at a random moment of the candle (before, during or
                # after its tick and launches); a restore kill once the candle's runs succeeded,
                # so the older cursor surely makes the sensor ask again for keys that ran.
                restore = k in restore_steps and bool(cursors)
                kill_at = t0 + rng.uniform(0.0, 10.0) if k in daemon_steps and not restore else None
                restart_at: float | None = None
                worker_seen: float | None = None
                worker_delay = rng.uniform(0.0, 45.0)
                while True:
                    now = time.monotonic()
                    if kill_at is not None and now >= kill_at:
                        deployment.kill_daemon()
                        kills.append(Kill("daemon", candle, now - t0))
                        restart_at, kill_at = now + rng.uniform(1.0, 10.0), None
                    if restart_at is not None and now >= restart_at:
                        deployment.start_daemon()
                        restart_at, last_restart = None, time.time()
                    if worker_due:
                        workers = deployment.run_workers()
                        if workers and worker_seen is None:
                            worker_seen = now
                        if (
                            workers
                            and worker_seen is not None
                            and now - worker_seen >= worker_delay
                        ):
                            victim = rng.choice(workers)
                            with contextlib.suppress(psutil.Error):
                                victim.kill()
                                kills.append(Kill("worker", candle, now - t0, f"pid {victim.pid}"))
                                worker_due -= 1
                                worker_seen, worker_delay = None, rng.uniform(0.0, 45.0)
                    settled = kill_at is None and restart_at is None
                    if settled and _succeeded(instance, keys):
                        if not restore:
                            break
                        restore = False
                        deployment.kill_daemon()
                        old = cursors[-rng.randint(1, min(len(cursors), 10))]
                        set_sensor_cursor(instance, old)
                        kills.append(Kill("daemon", candle, now - t0, f"cursor restored to {old}"))
                        restart_at = now + rng.uniform(1.0, 10.0)
                    if now - t0 > STEP_TIMEOUT_S:
                        outcome.lost.append(
                            f"candle {candle}: no success within {STEP_TIMEOUT_S:.0f} s"
                        )
                        if deployment.daemon is None:
                            deployment.start_daemon()
                        break
                    time.sleep(0.25)
                with contextlib.suppress(Exception):
                    cursors.append(sensor_state(instance).instigator_data.cursor)
                done = k + 1
                if done % 5 == 0 or done == candles:
                    elapsed = time.monotonic() - started
                    kinds = Counter(kill.kind for kill in kills)
                    progress(
                        f"{done}/{candles} candles, {elapsed:.0f} s, kills: "
                        f"{kinds['daemon']} daemon, {kinds['worker']} worker"
                    )
            # The sensor's first tick after the last restart has asked again for what the
            # restored cursor had forgotten (Dagster records the keys it skipped on the tick).
            wait_for_tick_after(instance, last_restart)
            rerequested = rerequested_keys(instance)
            # Let the queue and retry daemons finish anything still in flight, then stop.
            wait_until_idle(instance)
            deployment.stop()
            verdict = verify(world, instance, market_keys, steps)
        except BaseException:
            progress(f"daemon log:\n{deployment.tail('daemon')}")
            progress(f"code server log:\n{deployment.tail('code-server')}")
            raise
        finally:
            deployment.stop()
            os.environ.pop("DAGSTER_PG_URL", None)
    outcome.lost += verdict.lost
    outcome.cases = len(kills)
    outcome.survived = sum(1 for kill in kills if kill.candle_ms not in verdict.bad_candles)
    if verdict.lost:  # a problem no single candle explains (orders, parity) fails every case
        outcome.survived = min(outcome.survived, outcome.cases - 1) if outcome.cases else 0
    kinds = Counter(kill.kind for kill in kills)
    outcome.details = {
        "candles": candles,
        "markets": ",".join(markets),
        "decisions (candle x market)": candles * len(markets),
        "daemon kills": kinds["daemon"],
        "daemon kills with an older cursor restored": sum(1 for k in kills if "cursor" in k.note),
        "run worker kills": kinds["worker"],
        "daemon starts": deployment.daemon_starts,
        "dagster runs": verdict.runs,
        "successful runs": verdict.successful_runs,
        "failed runs (killed, then retried)": verdict.failed_runs,
        "run keys asked for again by the sensor (Dagster skipped them)": len(rerequested),
        "production signals": verdict.signals,
        "orders": verdict.orders,
        "round trips compared with the backtest": verdict.trades_compared,
        "duplicates found": sum(
            1 for what in verdict.lost if "launched" in what or "successful runs" in what
        ),
        "bypass dedup (demonstration)": bypass_dedup,
        "work folder": str(root),
    }
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trials.daemon_kills",
        description="A live replay driven by the real dagster-daemon (code server, sensor, run "
        "queue, run retries as deployed; instance in an embedded PostgreSQL), with the daemon "
        "and random run workers SIGKILLed. Passes when every run key has exactly one successful "
        "run, every candle and market one signal, every signal one order per purpose placed "
        "once, and each market's decisions and trades equal its backtest's.",
    )
    parser.add_argument("--candles", type=int, default=100, help="candles per market (default 100)")
    parser.add_argument("--markets", default=",".join(DEFAULT_MARKETS), help="market ids")
    parser.add_argument("--daemon-kills", type=int, default=10, help="daemon SIGKILLs")
    parser.add_argument("--worker-kills", type=int, default=10, help="run worker SIGKILLs")
    parser.add_argument(
        "--cursor-restores",
        type=int,
        default=3,
        help="daemon restarts with the sensor's cursor set back to an older save",
    )
    parser.add_argument(
        "--bypass-dedup",
        action="store_true",
        help="demonstration: the daemon runs with Dagster's run-key lookup disabled (must FAIL)",
    )
    parser.add_argument(
        "--barrier",
        action="store_true",
        help="the model exits at barriers: its stops and take-profits rest at the (paper) "
        "broker, and the checks add: exits equal the backtest's, nothing rests without a "
        "position and no position lacks its exits",
    )
    add_common_arguments(parser)
    args = parser.parse_args()
    markets = tuple(m.strip() for m in args.markets.split(",") if m.strip())

    def trial() -> TrialOutcome:
        return run_trial(
            args.candles,
            args.daemon_kills,
            args.worker_kills,
            args.cursor_restores,
            args.seed,
            markets,
            bypass_dedup=args.bypass_dedup,
            barrier=args.barrier,
            exchange=args.exchange,
        )

    return run_and_report(trial, args.json)


if __name__ == "__main__":
    sys.exit(main())
