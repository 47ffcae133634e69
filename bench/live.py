"""Live at scale: candle close (replay clock) → every market decided → the account rebalanced,
with the real Dagster daemon launching the real sensor's portfolio runs, at 5, 20 and 50 markets.

    .venv/bin/python bench/live.py [--markets 5,20,50] [--candles 6] [--interval 30]
                                   [--candle-seconds 45] [--start 2023-01-02] [--json out.json]

Markets beyond the sample's five are derived from it: time-shifted copies named `BTC30D`
(BTC's candles 30 days later: its candle at t is BTC's at t − 30 days), `ETH30D`, …, then 60 d,
90 d, and so on; each is a file of a derived candle folder the replay exchange serves like any
other (`--keep-folder` to look at it).

Per market count, set up from nothing: fresh databases `signals_bench_live` (candles, models,
signals, orders) and `signals_bench_live_dagster` (runs, events) on your store's server (your
own record is not touched); every market's candles before `--start` stored (the history a live
system has); your store's portfolio model (production, else the newest candidate: `make run`
trains one) installed as production with its universe set to the bench's markets and its
no-trade band to `--band` (default 0, so that orders are placed and timed; the bench's copy
only; a boosting or LSTM scorer decides any market's features); the replay exchange in
this process, its clock at `--start` running `decision candle / --candle-seconds` times real
time; the account on that exchange through ccxt (`--broker ccxt`, real orders over HTTP) or the
paper broker; and `dagster-daemon run` with `new_candle_sensor` on at `--interval` seconds
under SIGNALS_STRATEGY=portfolio (one run per decision candle, every market in it), each run
launched ahead of its candle's close when the close falls before the next tick (the default
shape: SIGNALS_PRELAUNCH_S is the interval and 5 s, scaled to the replay clock's speed;
`--no-prelaunch` measures the shape that launches after the close).

Per decision candle, from the replay clock's mapping to wall time, Dagster's run record and the
store's own timestamps:

- sensor wait      = run created − candle close       (the tick's phase; negative: the run was
                     requested ahead of the close, `pipeline.prelaunch`, and waited for it)
- run launch       = step start − run created          (queue, new process, imports, resources)
- close → signal   = last market's signal recorded − candle close
- close → order    = execution done (every order acknowledged) − candle close
- CPU per candle   = CPU of the daemon, its code server, the sensor's ticks and every run
  process (each counted through /proc while alive, and through this process, their
  subreaper, once reaped), from the first (untimed) candle's execution to the end, ÷ the
  candles timed; and each run process's own CPU up to its decision (imports included), which
  the run records.

The first candle after the daemon starts is run but not timed (the daemon's own start-up).
The reference, measured in this run: the model alone scoring all markets' feature rows.
Decisions are timed whatever the model decides; a candle with no order is counted, not timed
for close → order. When no candle could be timed the bench says why and exits 1.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # dagster and dagster-daemon of this environment
DAGSTER_YAML = (REPO / "pipeline" / "dagster_dev.yaml").read_text()
SAMPLE = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
SHIFT_DAYS = 30
DAY_MS = 86_400_000
PR_SET_CHILD_SUBREAPER = 36


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def derived_markets(count: int) -> dict[str, tuple[str, int]]:
    """The sample's five, then their copies shifted by 30, 60, … days (`BTC30DUSDT`, …):
    market id → (the sample market it copies, its shift in days)."""
    markets = {m: (m, 0) for m in SAMPLE}
    k = 1
    while len(markets) < count:
        markets |= {f"{m[:-4]}{k * SHIFT_DAYS}D{m[-4:]}": (m, k * SHIFT_DAYS) for m in SAMPLE}
        k += 1
    return dict(list(markets.items())[:count])


def derived_folder(data_dir: Path, markets: dict[str, tuple[str, int]], dest: Path) -> Path:
    """A candle folder holding the sample's files and the shifted copies `markets` names."""
    import pandas as pd

    dest.mkdir(parents=True, exist_ok=True)
    for mid, (base, days) in markets.items():
        source = next(data_dir.glob(f"{base}.csv*"))
        if days == 0:
            target = dest / source.name
            if not target.exists():
                target.symlink_to(source.resolve())
            continue
        target = dest / f"{mid}.csv"
        if target.exists():
            continue
        frame = pd.read_csv(source, float_precision="round_trip")
        frame["timestamp"] += days * DAY_MS
        frame.to_csv(target, index=False)
    return dest


def model_reference_ms(record, universe: int, repeats: int = 50) -> float:
    """p50 of the model deciding one window per market, explained, as live does (the model
    alone: no candles, features or store)."""
    from pipeline.features.registry import feature_names
    from pipeline.model.scorer import load_scorer
    from pipeline.signals.inference import decide_scorer

    loaded = load_scorer(record, feature_names())
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(universe, loaded.window, len(loaded.features)))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for window in windows.astype(np.float32):
            decide_scorer(loaded, window, market="x", timestamp=0)
        times.append((time.perf_counter() - t) * 1000)
    return pct(times, 50)


def _reap(deadline_s: float = 60.0) -> None:
    """Wait for every descendant this subreaper inherited (runs the daemon left running)."""
    until = time.time() + deadline_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.time() > until:
            for child in _children():
                os.kill(child, signal.SIGKILL)
            until = time.time() + 10
        time.sleep(0.2)


def _processes() -> dict[int, list[str]]:
    """Every process's /proc stat fields after its name (field 3 onwards)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return found


def _children() -> list[int]:
    me = str(os.getpid())
    return [pid for pid, fields in _processes().items() if fields[1] == me]


def _tree_cpu() -> float:
    """CPU of every process this one started, now: the live and unreaped ones' own (utime,
    stime) and what they reaped (cutime, cstime), plus what this process reaped."""
    procs = _processes()
    parent = {pid: int(fields[1]) for pid, fields in procs.items()}
    me, ticks, total = os.getpid(), os.sysconf("SC_CLK_TCK"), 0
    for pid, fields in procs.items():
        ancestor = parent.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parent.get(ancestor)
        if ancestor == me and pid != me:
            total += sum(int(x) for x in fields[11:15])
    return total / ticks + _cpu_children()


def _cpu_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _cpu_self() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def run_scale(args, ids: list[str], folder: Path, source_record) -> dict:
    """One bench at len(ids) markets; its figures."""
    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.timeframes import ms_to_iso, parse_date_ms, timeframe_ms
    from pipeline.exchange.ids import BINANCE_USDM
    from pipeline.exchange.markets import symbol_from_id
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.replay.signing import DEFAULT_API_KEY, DEFAULT_API_SECRET
    from pipeline.settings import Settings
    from pipeline.signals.candle import factor_basket
    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL
    from pipeline.store.database import Database, fresh_database, resolve_url
    from pipeline.store.studies import sqlalchemy_url
    from pipeline.trading_replay import install_model, seed_candles

    settings = Settings.from_env()
    n = len(ids)
    markets = [symbol_from_id(m) for m in ids]
    tf = source_record.timeframe
    step = timeframe_ms(tf)
    start = parse_date_ms(args.start) // step * step
    timeframes = ["1h", "4h", "1d"]
    url = fresh_database(resolve_url(settings), "signals_bench_live")
    dagster_url = sqlalchemy_url(
        fresh_database(resolve_url(settings), "signals_bench_live_dagster"),
        driver="postgresql+psycopg2",
    )
    db = Database(url)
    seeded = list(dict.fromkeys([*markets, *factor_basket(source_record)]))
    t0 = time.time()
    print(f"[{n} markets] storing candles before {args.start} …", file=sys.stderr)
    seed_candles(db, CandleFolder(folder), BINANCE_USDM, seeded, timeframes, start)
    print(f"[{n} markets] stored in {time.time() - t0:.0f} s", file=sys.stderr)
    # The bench's copy: these markets, and (`--band`) the no-trade band it rebalances past.
    source_record.config = {
        **source_record.config,
        "universe": markets,
        "portfolio": {**source_record.config["portfolio"], "band": args.band},
    }
    install_model(db, source_record, {"reason": "bench/live.py", "source_model": source_record.id})

    speed = step / 1000.0 / args.candle_seconds
    home = Path(tempfile.mkdtemp(prefix="bench-live-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    # The first close 5 s (wall) after the daemon is asked to start; that candle is not timed.
    exchange = ReplayExchange(
        folder, ReplayClock(start - int(5 * speed * 1000), speed=speed), balance=100_000.0
    )
    wanted = args.candles + 1
    lead_s = 0 if args.no_prelaunch else int((args.interval + 5) * speed)
    with ReplayServer(exchange) as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home / "dagster"),
            ENV_DAGSTER_PG_URL: dagster_url,
            "SIGNALS_HOME": str(home),
            "SIGNALS_DATABASE_URL": url,
            "SIGNALS_SOURCE": "ccxt",
            "SIGNALS_API_URL": server.url,
            "SIGNALS_STRATEGY": "portfolio",
            "SIGNALS_DECISION_TIMEFRAME": tf,
            "SIGNALS_MARKETS": ",".join(markets),
            "SIGNALS_TIMEFRAMES": ",".join(timeframes),
            "SIGNALS_SENSOR_INTERVAL_S": str(args.interval),
            # The lead is on the exchange's clock, which runs `speed` times faster here.
            "SIGNALS_PRELAUNCH_S": str(lead_s),
            "SIGNALS_MAX_NOTIONAL": "1e12",
            "SIGNALS_BROKER": args.broker,
            "SIGNALS_API_KEY": DEFAULT_API_KEY,
            "SIGNALS_API_SECRET": DEFAULT_API_SECRET,
        }
        location = ["-m", "pipeline.definitions"]
        subprocess.run(
            [str(BIN / "dagster"), "sensor", "start", "new_candle_sensor", *location],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        clock_wall0, clock_ms0 = time.time(), exchange.clock.now_ms()
        cpu0, self0 = _cpu_children(), _cpu_self()
        log = open(home / "daemon.log", "w")  # noqa: SIM115
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", *location],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 5 + wanted * args.candle_seconds + args.interval + 180
        decided = executed = 0
        shown = (0, 0)
        cpu_first = None  # the tree's CPU once the first (untimed) candle is executed
        try:
            while time.time() < deadline:
                time.sleep(2)
                with db.connection() as conn:
                    decided, executed = conn.execute(
                        """SELECT (SELECT count(*) FROM portfolio_decisions),
                                  (SELECT count(*) FROM portfolio_executions
                                   WHERE status = 'done')"""
                    ).fetchone()
                    conn.commit()
                if (decided, executed) != shown:
                    shown = (decided, executed)
                    print(
                        f"[{n} markets] {decided}/{wanted} candles decided, {executed} executed",
                        file=sys.stderr,
                    )
                if executed and cpu_first is None:
                    cpu_first = _tree_cpu()
                if executed >= wanted:
                    break
        finally:
            daemon.terminate()
            daemon.wait(60)
            log.close()
            _reap()
        cpu_all = _cpu_children() - cpu0
        requests = dict(exchange.stats()["requests_by_method"])
        cpu_timed = _cpu_children() - cpu_first if cpu_first is not None else float("nan")
        cpu_exchange = _cpu_self() - self0

    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ[ENV_DAGSTER_PG_URL] = dagster_url
    instance = dg.DagsterInstance.get()
    records = instance.get_run_records(dg.RunsFilter(job_name="portfolio_live_job"))
    created = {r.dagster_run.tags.get("signals/candle"): r for r in records}
    statuses = [r.dagster_run.status.value for r in records]
    tags = [r.dagster_run.tags.get("signals/candle") for r in records]
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT (extract(epoch FROM d.candle_time) * 1000)::bigint,
                      extract(epoch FROM d.recorded_at)::float8,
                      (SELECT max((s.timings->>'signal_recorded_at')::float8)
                       FROM signals s WHERE s.candle_time = d.candle_time),
                      (SELECT min((s.timings->>'step_started_at')::float8)
                       FROM signals s WHERE s.candle_time = d.candle_time),
                      (SELECT max((s.timings->>'process_cpu_s')::float8)
                       FROM signals s WHERE s.candle_time = d.candle_time),
                      (SELECT count(*) FROM signals s WHERE s.candle_time = d.candle_time),
                      extract(epoch FROM e.updated_at)::float8, e.action, e.result
               FROM portfolio_decisions d
               LEFT JOIN portfolio_executions e
                 ON e.candle_time = d.candle_time AND e.status = 'done'
               WHERE d.mode = 'production' ORDER BY d.candle_time"""
        ).fetchall()
        conn.commit()
    db.close()
    candles = []
    for (
        candle_ms,
        decided_at,
        signal_at,
        step_at,
        run_cpu,
        signals,
        done_at,
        action,
        result,
    ) in rows:
        close_wall = clock_wall0 + (candle_ms + step - clock_ms0) / speed / 1000.0
        run = created.get(ms_to_iso(candle_ms))
        orders = sum(len(m.get("orders", [])) for m in (result or {}).get("markets", []))
        candles.append(
            {
                "candle": ms_to_iso(candle_ms),
                "signals": signals,
                "action": action,
                "orders": orders,
                "sensor_wait_s": run.create_timestamp.timestamp() - close_wall if run else None,
                "run_launch_s": step_at - run.create_timestamp.timestamp() if run else None,
                "close_to_decision_s": decided_at - close_wall,
                "close_to_signal_s": signal_at - close_wall if signal_at else None,
                "close_to_order_s": done_at - close_wall if done_at and orders else None,
                "run_cpu_to_decision_s": run_cpu,
            }
        )
    timed = candles[1:]  # the first: the daemon's start-up
    return {
        "markets": n,
        "candles": timed,
        "untimed_first": candles[:1],
        "cpu_all_s": cpu_all,
        "cpu_exchange_s": cpu_exchange,
        "cpu_per_candle_s": cpu_timed / len(timed) if timed else float("nan"),
        "runs": len(records),
        "run_statuses": {s: statuses.count(s) for s in set(statuses)},
        "runs_per_candle_max": max((tags.count(c) for c in set(tags)), default=0),
        "daemon_log": str(home / "daemon.log"),
        # what the sensor, the runs and the account asked the exchange, per candle decided
        "requests_per_candle": {
            k: v / len(candles) for k, v in sorted(requests.items(), key=lambda kv: -kv[1])
        }
        if candles
        else {},
    }


def summarise(result: dict) -> list[list[str]]:
    timed = result["candles"]

    def cell(key: str, unit: str = "s") -> str:
        values = [c[key] for c in timed if c[key] is not None]
        if not values:
            return "—"
        return f"{pct(values, 50):.2f} / {pct(values, 95):.2f} {unit}"

    return [
        [
            str(result["markets"]),
            f"{len(timed)} ({sum(c['orders'] > 0 for c in timed)} ordered)",
            cell("sensor_wait_s"),
            cell("run_launch_s"),
            cell("close_to_signal_s"),
            cell("close_to_order_s"),
            f"{result['cpu_per_candle_s']:.1f} s",
            cell("run_cpu_to_decision_s"),
        ]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", default="5,20,50", help="market counts, one bench each")
    parser.add_argument("--candles", type=int, default=6, help="timed decision candles each")
    parser.add_argument("--interval", type=int, default=30, help="sensor interval, seconds")
    parser.add_argument(
        "--candle-seconds",
        type=float,
        default=45.0,
        help="real seconds per replayed decision candle (default 45)",
    )
    parser.add_argument("--start", default="2023-01-02")
    parser.add_argument("--broker", choices=("ccxt", "paper"), default="ccxt")
    parser.add_argument(
        "--band",
        type=float,
        default=0.0,
        help="no-trade band of the bench's copy of the model (default 0: every change of a "
        "target is traded, so orders are placed and timed; the model's own band at 50 markets "
        "leaves most candles untraded)",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(
            "SIGNALS_DATA_DIR", str(REPO.parent / "shared" / "data" / "binance-usdm-1h")
        ),
    )
    parser.add_argument(
        "--no-prelaunch",
        action="store_true",
        help="launch each run only after its candle closed (SIGNALS_PRELAUNCH_S=0): the shape "
        "without runs started ahead of the close",
    )
    parser.add_argument("--keep-folder", help="write the derived candle folder here and keep it")
    parser.add_argument("--json", help="write every candle's figures here")
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.markets.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        parser.error("--markets: market counts such as 5,20,50")
    if args.candles < 2:
        parser.error("--candles must be at least 2")

    from pipeline.portfolio.model import MODEL_NAME
    from pipeline.settings import Settings
    from pipeline.store.database import open_database
    from pipeline.trading_replay import pick_model

    settings = Settings.from_env()
    record, why = pick_model(open_database(settings), settings.decision_timeframe, name=MODEL_NAME)
    print(f"portfolio model {record.id} ({record.timeframe}): {why}", file=sys.stderr)
    markets = derived_markets(counts[-1])
    ids = list(markets)
    folder_root = Path(args.keep_folder or tempfile.mkdtemp(prefix="bench-live-candles-"))
    print(f"deriving {len(ids) - 5} shifted markets into {folder_root} …", file=sys.stderr)
    folder = derived_folder(Path(args.data_dir), markets, folder_root)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("cannot become the runs' subreaper: CPU of orphaned runs is missed", file=sys.stderr)

    results = []
    for n in counts:
        results.append(run_scale(args, ids[:n], folder, record))
        references = model_reference_ms(record, n)
        results[-1]["model_reference_ms"] = references
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    timed = [r for r in results if r["candles"]]
    for r in results:
        if not r["candles"]:
            print(
                f"{r['markets']} markets: no candle could be timed ({r['runs']} runs: "
                f"{r['run_statuses']}): see {r['daemon_log']}",
                file=sys.stderr,
            )
    if not timed:
        return 1
    print(
        f"live at scale: a {record.timeframe} candle every {args.candle_seconds:g} s, sensor "
        f"interval {args.interval} s, broker {args.broker}, runs launched "
        f"{'after the close' if args.no_prelaunch else 'ahead of the close'}; "
        "p50 / p95 per decision candle"
    )
    print(
        markdown_table(
            [
                "markets",
                "candles timed",
                "sensor wait",
                "run launch",
                "close → signal",
                "close → order",
                "CPU per candle (all)",
                "run CPU to decision",
            ],
            [row for r in timed for row in summarise(r)],
        )
    )
    for r in timed:
        print(
            f"{r['markets']} markets: runs {r['runs']} ({r['run_statuses']}), at most "
            f"{r['runs_per_candle_max']} per candle (one expected); the exchange (this "
            f"process) {r['cpu_exchange_s']:.1f} s CPU; the model alone scoring every market: "
            f"{r['model_reference_ms']:.2f} ms"
        )
    first, last = timed[0], timed[-1]
    asked = ", ".join(f"{k} {v:.1f}" for k, v in list(last["requests_per_candle"].items())[:8])
    print(f"exchange requests per candle at {last['markets']} markets (most asked): {asked}")
    if len(timed) > 1:
        growth = last["cpu_per_candle_s"] / first["cpu_per_candle_s"]
        print(
            f"growth {first['markets']} → {last['markets']} markets "
            f"({last['markets'] / first['markets']:.0f}x): CPU per candle {growth:.2f}x"
        )
    budget = args.interval + 5
    orders95 = pct([c["close_to_order_s"] for c in last["candles"] if c["close_to_order_s"]], 95)
    print(
        f"goal: {last['markets']} markets decided and ordered within interval + 5 s = {budget} s "
        f"at p95: {'MET' if orders95 <= budget else 'NOT MET'} ({orders95:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
