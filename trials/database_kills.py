"""PostgreSQL killed at random points of an ingest and of live trading: nothing lost, nothing
twice, and the first command after each crash brings the embedded server back.

Ingest: each round deletes a random tail of the stored candles, starts `signals ingest` (a real
process), SIGKILLs the embedded postmaster at a random moment while it writes, then runs
`signals ingest` again, which must restart the server (crash recovery) and finish; the
`candles` table is then compared with the source folder row by row.

Live: a replay exchange serves candles over HTTP (its clock stepped candle by candle); a child
process runs the real sensor and live job (`LiveReplay`, paper accounts in PostgreSQL) until
the postmaster is killed under it; a fresh child, like the next run the daemon launches,
restarts the server and resumes at the last candle it had reached. At the end every market and
candle must have exactly one signal, client order ids must be distinct, and each market's
decisions and trades must equal its backtest's (`parity`).

    python -m trials.database_kills                 # 10 + 10 kills, about 5 minutes
    python -m trials.database_kills --ingest-kills 3 --live-kills 3 --live-candles 12
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

import pandas as pd

from trials.outcome import TrialOutcome, add_common_arguments, run_and_report
from trials.replay_desk import exchange_flag, speaking, trial_exchange

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "binance-usdm-1h"
EXCHANGE = "binanceusdm"  # the default; --exchange bybit: the live half speaks Bybit v5
HOUR = 3_600_000
INGEST_SINCE = "2020-01-01"
LIVE_MARKETS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
COMMAND = "python -m trials.database_kills"


# -- the server ---------------------------------------------------------------------------
def postmaster_pid(pgdata: Path) -> int | None:
    with suppress(FileNotFoundError, ValueError, IndexError):
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    return None


def kill_postmaster(pgdata: Path) -> bool:
    """SIGKILL the running postmaster; False when none was running."""
    from pipeline.store.embedded import postmaster_alive

    pid = postmaster_pid(pgdata)
    if pid is None or not postmaster_alive(pgdata):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def child_env(home: Path) -> dict[str, str]:
    """The environment of every command: its own SIGNALS_HOME, so its own embedded server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALS_", "DAGSTER_"))}
    env["SIGNALS_HOME"] = str(home)
    # The per-market live path (signals, PositionManager) is what this trial kills under;
    # the portfolio live path is not covered by the trials yet.
    env["SIGNALS_STRATEGY"] = "barrier"
    env["SIGNALS_EXCHANGE"] = trial_exchange()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


# -- ingest -------------------------------------------------------------------------------
def ingest_command(data_dir: Path, symbols: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "ingest",
        "--source",
        "csv",
        "--data-dir",
        str(data_dir),
        "--markets",
        ",".join(symbols),
        "--timeframes",
        "1h",
        "--since",
        INGEST_SINCE,
    ]


def compare_with_source(url: str, source: dict[str, pd.DataFrame]) -> list[str]:
    """Each market's stored candles against the folder's, row by row; what differs, in words."""
    from pipeline.store import candles as candle_store
    from pipeline.store.database import Database

    differences = []
    db = Database(url, max_size=1)
    try:
        with db.connection() as conn:
            for symbol, frame in source.items():
                stored = candle_store.load_candles(conn, trial_exchange(), symbol, "1h")
                stored = stored[frame.columns].reset_index(drop=True)
                if len(stored) != len(frame):
                    differences.append(
                        f"{symbol}: {len(stored)} rows stored, source has {len(frame)}"
                    )
                elif not stored.equals(frame.reset_index(drop=True)):
                    bad = (stored != frame.reset_index(drop=True)).any(axis=1)
                    differences.append(f"{symbol}: {int(bad.sum())} rows differ from the source")
    finally:
        db.close()
    return differences


def delete_tail(url: str, symbols: list[str], keep_share: float) -> int:
    """Delete each market's newest candles beyond `keep_share` of them: work for the next ingest."""
    import psycopg

    deleted = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for symbol in symbols:
            row = conn.execute(
                "SELECT min(open_time), max(open_time) FROM candles WHERE symbol = %s", [symbol]
            ).fetchone()
            if row[0] is None:
                continue
            cut = row[0] + (row[1] - row[0]) * keep_share
            deleted += conn.execute(
                "DELETE FROM candles WHERE symbol = %s AND open_time > %s", [symbol, cut]
            ).rowcount
    return deleted


_CLIENTS = (
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND pid <> pg_backend_pid()"
)


def client_pids(url: str) -> set[int]:
    """The client backends connected now (taken before a child starts: see below)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute(_CLIENTS).fetchall()}


def wait_for_client(
    url: str, child: subprocess.Popen, before: set[int] | None = None, timeout_s: float = 120.0
) -> bool:
    """Wait until a client not among `before` is connected (the child at work); False if it
    exited first. Without `before`, a connection left by anyone else would count, and a kill
    timed from it could land before the child even connected (a miss, every time, once the
    delays had shrunk)."""
    import psycopg

    known = before or set()
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and child.poll() is None:
            pids = {row[0] for row in conn.execute(_CLIENTS).fetchall()}
            if pids - known:
                return True
            time.sleep(0.02)
    return False


def ingest_trial(
    home: Path, data_dir: Path, symbols: list[str], kills: int, rng: random.Random, log
) -> tuple[int, int, list[str], dict]:
    """`kills` rounds; returns (kills that hit a running ingest, rounds that ended exact, lost,
    details)."""
    from pipeline.data.csv_source import CandleFolder
    from pipeline.store.embedded import embedded_url

    env = child_env(home)
    folder = CandleFolder(data_dir)
    source = {s: folder.read(s) for s in symbols}
    command = ingest_command(data_dir, symbols)
    pgdata = home / "pg"
    url = embedded_url(pgdata)
    before = client_pids(url)
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_client(url, child, before)
    started = time.perf_counter()
    _, err = child.communicate(timeout=600)
    work_s = full_work_s = time.perf_counter() - started  # from its first connection to exit
    if child.returncode != 0:
        raise RuntimeError(f"the first ingest failed: {err.decode()[-1000:]}")
    hits, exact, lost, missed, errors = 0, 0, [], 0, []
    restart_s: list[float] = []
    attempts = 0
    # A kill that lands after the ingest finished is no case (retried): on a loaded machine
    # the work's length varies, so a few more tries than kills.
    while hits < kills and attempts < kills * 4 + 8:
        attempts += 1
        keep = rng.uniform(0.0, 0.6)
        deleted = delete_tail(url, symbols, keep)
        before = client_pids(url)
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        at_work = wait_for_client(url, child, before)
        delay = rng.uniform(0.0, 0.9) * work_s * (1 - keep)
        time.sleep(delay)
        killed = at_work and child.poll() is None and kill_postmaster(pgdata)
        _out, err = child.communicate(timeout=600)
        if not killed or child.returncode == 0:
            missed += 1  # it finished first: not a case (the next command still restarts)
            # The first ingest's length was measured on a machine perhaps busier than now:
            # draw the next delay from a shorter span, so that the kills converge on the work.
            work_s *= 0.6
            url = embedded_url(pgdata)
            continue
        hits += 1
        last_line = (err.strip().splitlines() or [""])[-1]
        clear = (
            last_line.startswith("signals: error:")
            and "the database went away mid-command" in last_line
            and "Traceback" not in err
        )
        errors.append(last_line.split(" (the database went away")[0][:120])
        started = time.perf_counter()
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        restart_s.append(time.perf_counter() - started)
        url = embedded_url(pgdata)
        problems = compare_with_source(url, source)
        if again.returncode != 0:
            problems.append(f"the ingest after the crash failed: {again.stderr.strip()[-300:]}")
        if not clear:
            problems.append(f"the killed ingest's error was not one clear line: {err[-300:]!r}")
        if problems:
            lost.extend(f"ingest kill {hits} (after {delay:.2f} s): {p}" for p in problems)
        else:
            exact += 1
        log(
            f"ingest kill {hits}/{kills}: {deleted} rows to re-ingest, killed {delay:.2f} s "
            f"into its work, {'exact' if not problems else 'LOST'}; the next ingest took "
            f"{restart_s[-1]:.1f} s"
        )
    details = {
        "ingest_rows": sum(len(f) for f in source.values()),
        "ingest_full_work_s": round(full_work_s, 1),
        "ingest_kills_that_missed_redrawn": missed,
        "ingest_next_command_s_max": round(max(restart_s, default=0.0), 1),
        "ingest_killed_errors_sample": sorted(set(errors))[:3],
    }
    return hits, exact, lost, details


# -- live ---------------------------------------------------------------------------------
class RemoteClock:
    """The replay exchange's clock set over its control endpoint (the child has no exchange
    object, only its URL): what `LiveReplay.tick` needs of `exchange.clock`."""

    def __init__(self, api_url: str):
        self.api_url = api_url

    def set(self, ms: int | None = None, speed: float | None = None) -> None:
        body = json.dumps({"ms": ms, "speed": speed}).encode()
        request = urllib.request.Request(f"{self.api_url}/_replay/clock", data=body, method="POST")
        urllib.request.urlopen(request, timeout=10).read()


class RemoteExchange:
    def __init__(self, api_url: str):
        self.clock = RemoteClock(api_url)


def pump(stream, lines: queue.Queue[str]) -> None:
    """Every line of a child's output into a queue (read as it comes, never blocking it)."""
    for line in stream:
        lines.put(line)


def last_signalled_candle(url: str) -> int | None:
    import psycopg

    with psycopg.connect(url, connect_timeout=30) as conn:
        row = conn.execute(
            "SELECT (extract(epoch FROM max(candle_time)) * 1000)::bigint FROM signals"
        ).fetchone()
    return None if row[0] is None else int(row[0])


def live_child(url_db: str, api_url: str, home: str, closes: list[int]) -> int:
    """One process's share of live trading: restart the server if it crashed, resume at the
    last candle reached (re-running it: runs are idempotent), stop at the first failed run
    (the database gone), as a killed run process would. Exit 0 when every close is done."""
    from pipeline.store.embedded import embedded_url
    from pipeline.trading_replay import LiveReplay, replay_resources
    from resources.database import PostgresResource

    embedded_url(Path(home) / "pg")  # the first command after a crash brings the server back
    reached = last_signalled_candle(url_db)
    todo = [c for c in closes if reached is None or c - HOUR >= reached]
    resources = replay_resources(url_db, api_url, home, exchange=trial_exchange())
    # As deployed: the embedded server of SIGNALS_HOME, which a run restarts if it dies.
    resources["database"] = PostgresResource(home=home)
    replay = LiveReplay(resources, RemoteExchange(api_url))  # type: ignore[arg-type]
    for close in todo:
        outcome = replay.tick(close)
        print(json.dumps({"close": close, "launched": len(outcome.launched)}), flush=True)
        if outcome.failures:
            print(json.dumps({"failed": outcome.failures}), flush=True)
            return 3
    return 0


def live_trial(
    home: Path, data_dir: Path, kills: int, candles: int, rng: random.Random, log
) -> tuple[int, int, list[str], dict]:
    """Live trading over `candles` candles with `kills` postmaster kills; returns (kills that
    hit a running live process, kills after which it resumed, lost, details)."""
    import psycopg

    from pipeline.data.csv_source import CandleFolder
    from pipeline.exchange.markets import market_id
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.store.database import Database
    from pipeline.store.embedded import embedded_url
    from pipeline.trading_replay import parity, seed_candles
    from tests.helpers.live import LIVE_START, install_random_model, live_folder

    folder_all = CandleFolder(data_dir)
    frames = {market_id(s): folder_all.read(s) for s in folder_all.symbols()}
    home = home / "live"  # its own SIGNALS_HOME: its own embedded server, the default database
    replay_dir = live_folder(home, frames, candles)
    folder = CandleFolder(replay_dir)
    pgdata = home / "pg"
    url = embedded_url(pgdata)
    db = Database(url)
    symbols = folder.symbols()
    seed_candles(db, folder, trial_exchange(), symbols, ["1h"], LIVE_START)
    _, threshold, _ = install_random_model(db, LIVE_MARKETS, ["1h"], exchange=trial_exchange())
    db.close()
    closes = [LIVE_START + (k + 1) * HOUR for k in range(candles)]
    exchange = ReplayExchange(replay_dir, ReplayClock(LIVE_START, speed=1.0))
    env = child_env(home)
    env["SIGNALS_MARKETS"] = ",".join(LIVE_MARKETS)
    hits, lost, children, failed_runs, in_process = 0, [], 0, 0, 0
    done = False
    with ReplayServer(exchange) as server:
        command = [
            sys.executable, "-m", "trials.database_kills", "--live-child",
            url, server.url, str(home), json.dumps(closes),
        ]  # fmt: skip
        while not done and children < kills + 5:
            children += 1
            err_path = home / f"live-process-{children}.err"  # Dagster logs a lot: not a pipe
            with err_path.open("w") as err_file:
                child = subprocess.Popen(
                    command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                    stderr=err_file, text=True,
                )  # fmt: skip
            lines: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=pump, args=(child.stdout, lines))
            reader.start()
            ticks = failures = 0
            while hits < kills and child.poll() is None:
                # Let it decide 1-3 candles (after a kill: proof that it carried on), then kill
                # at a random moment of the next (a tick of two runs lasts about a second).
                wanted, seen = rng.randint(1, 3), 0
                while seen < wanted and (child.poll() is None or not lines.empty()):
                    with suppress(queue.Empty):
                        line = lines.get(timeout=0.5)
                        seen += '"close"' in line
                        failures += '"failed"' in line
                ticks += seen
                time.sleep(rng.uniform(0.0, 1.0))
                if child.poll() is None and kill_postmaster(pgdata):
                    hits += 1
                    log(f"live kill {hits}/{kills}: after candle {ticks} of process {children}")
            child.wait(timeout=900)
            reader.join()
            rest = list(lines.queue)
            failures += sum('"failed"' in x for x in rest)
            failed_runs += failures
            if child.returncode == 0:
                done = True
            elif child.returncode != 3:  # 3: a run failed (its statement died with the server)
                err = err_path.read_text()
                lost.append(f"live process {children} crashed: {err.strip()[-400:]}")
                break
    in_process = hits - (children - 1)  # kills that no process had to be restarted for
    embedded_url(pgdata)  # the last kill may have had no process after it
    with psycopg.connect(url) as conn:
        per_candle = conn.execute(
            "SELECT symbol, (extract(epoch FROM candle_time) * 1000)::bigint, count(*) "
            "FROM signals GROUP BY 1, 2"
        ).fetchall()
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT client_order_id) FROM orders"
        ).fetchone()
    expected = {(s, c - HOUR) for s in LIVE_MARKETS for c in closes}
    seen = {(s, c) for s, c, _ in per_candle}
    lost += [f"no signal for {s} {c}" for s, c in sorted(expected - seen)]
    lost += [f"{n} signals for {s} {c}" for s, c, n in per_candle if n != 1]
    if total != distinct:
        lost.append(f"{total - distinct} orders placed twice")
    db = Database(url)
    seed_candles(db, folder, trial_exchange(), symbols, ["1h"], closes[-1] + HOUR)
    from pipeline.backtest.config import BacktestConfig

    costs = BacktestConfig(timeframe="1h", fee=0.0005, position_size=0.5)
    decided = [c - HOUR for c in closes]
    trades = 0
    for symbol in LIVE_MARKETS:
        report = parity(
            db, trial_exchange(), symbol, "1h", ["1h"], decided, costs,
            f"paper-{market_id(symbol)}", 10_000.0,
        )  # fmt: skip
        trades += report.trades_compared
        if not (report.identical_decisions and report.same_trades):
            lost.append(f"{symbol}: live differs from its backtest after the kills")
    db.close()
    details = {
        "live_kills_recovered_in_process": in_process,
        "live_candles": candles,
        "live_markets": len(LIVE_MARKETS),
        "live_processes": children,
        "live_runs_failed_by_kills": failed_runs,
        "live_orders": total,
        "live_round_trips_compared": trades,
        "live_model_threshold": round(threshold, 4),
    }
    return hits, hits if done else 0, lost, details


# -- the trial ----------------------------------------------------------------------------
def run_trial(
    ingest_kills: int = 10,
    live_kills: int = 10,
    live_candles: int = 48,
    seed: int = 0,
    data_dir: Path = DEFAULT_DATA_DIR,
    markets: list[str] | None = None,
    log=print,
    exchange: str = EXCHANGE,
) -> TrialOutcome:
    """Both halves on one private embedded server (a temporary SIGNALS_HOME, removed after);
    the live half's ccxt clients speak `exchange`'s dialect to the replay exchange (the
    ingest half reads a candle file and stores it under `exchange`)."""
    with speaking(exchange):
        outcome = _run_trial(ingest_kills, live_kills, live_candles, seed, data_dir, markets, log)
    outcome.command += exchange_flag(exchange)
    return outcome


def _run_trial(
    ingest_kills: int,
    live_kills: int,
    live_candles: int,
    seed: int,
    data_dir: Path,
    markets: list[str] | None,
    log,  # type: ignore[no-untyped-def]
) -> TrialOutcome:
    from pipeline.data.csv_source import CandleFolder
    from pipeline.store.embedded import stop_embedded

    if not Path(data_dir).is_dir():
        raise SystemExit(f"no candle folder at {data_dir}: pass --data-dir")
    rng = random.Random(seed)
    symbols = markets or CandleFolder(data_dir).symbols()
    home = Path(tempfile.mkdtemp(prefix="signals-dbkills-"))
    details: dict = {}
    lost: list[str] = []
    cases = survived = 0
    try:
        if ingest_kills:
            hits, exact, gone, more = ingest_trial(home, data_dir, symbols, ingest_kills, rng, log)
            cases, survived = cases + hits, survived + exact
            lost += gone
            details |= more
            if hits < ingest_kills:
                lost.append(f"only {hits} of {ingest_kills} ingest kills hit a running ingest")
        if live_kills:
            hits, resumed, gone, more = live_trial(
                home, data_dir, live_kills, live_candles, rng, log
            )
            cases, survived = cases + hits, survived + resumed
            lost += gone
            details |= more
            if hits < live_kills:
                lost.append(f"only {hits} of {live_kills} live kills hit a running live process")
        details["ingest_kills"] = ingest_kills
        details["live_kills"] = live_kills
    finally:
        stop_embedded(home / "pg")
        stop_embedded(home / "live" / "pg")
        if not os.environ.get("TRIAL_KEEP"):
            subprocess.run(["rm", "-rf", str(home)], check=False)
    return TrialOutcome(
        "PostgreSQL killed mid-ingest and mid-live",
        cases,
        survived,
        lost,
        command=COMMAND,
        details=details,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--live-child"]:
        url, api_url, home, closes = argv[1:5]
        return live_child(url, api_url, home, json.loads(closes))
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ingest-kills", type=int, default=10, help="postmaster kills mid-ingest")
    parser.add_argument("--live-kills", type=int, default=10, help="postmaster kills mid-live")
    parser.add_argument("--live-candles", type=int, default=48, help="candles traded live")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="candle folder")
    parser.add_argument("--markets", help="ingest only these (comma-separated unified symbols)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    markets = args.markets.split(",") if args.markets else None
    return run_and_report(
        lambda: run_trial(
            args.ingest_kills, args.live_kills, args.live_candles, args.seed, args.data_dir,
            markets, exchange=args.exchange,
        ),
        args.json,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
