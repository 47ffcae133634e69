"""Import weight of the code location, and the CPU of one live run's process.

    .venv/bin/python bench/import_weight.py [--repeat 5]
    .venv/bin/python bench/import_weight.py --live [--start 2021-12-20] [--model ID]

Every Dagster run is a new process that imports `pipeline.definitions` before it does anything,
so what that import costs, every run pays. Printed, for each strategy (SIGNALS_STRATEGY
portfolio and barrier): the CPU (user + sys) of `python -c "import pipeline.definitions"` in
fresh processes (best and median of `--repeat`), beside `import dagster, pandas` alone (the
floor: Dagster reads the assets' `pd.DataFrame` annotations, so pandas loads with them); the
heavy libraries the import left in `sys.modules` (none is the goal); and, from one run under
`python -X importtime`, the packages whose import took longest (cumulative).

`--live` also times one run of `portfolio_live_job` in a process of its own, as a launched run
is: import the Definitions, refresh every market's candles over ccxt, decide with the model,
record the decision and rebalance the paper account. It needs a portfolio model in your store
(`make run` trains one; production, else the newest candidate, else `--model`), which it copies
with the candles before `--start` into a fresh database `signals_bench_imports` on your server
(your own records are not touched). The replay exchange serves the candle folder
(`--data-dir`, default SIGNALS_DATA_DIR) from this process, its clock a minute after the close
of the decision candle that opened at `--start`. The run uses an ephemeral Dagster instance: a
run launched by the daemon also opens the instance's PostgreSQL storage, which is Dagster's own
cost and not timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "ccxt",
    "optuna",
    "matplotlib",
    "sklearn",
    "scipy",
    "numba",
    "sqlalchemy",
    "pandera",
)
STRATEGIES = ("portfolio", "barrier")


def _child_cpu(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """user + sys seconds of one child process (and its own children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, done


def cpu(code: str, env: dict[str, str], repeat: int) -> tuple[float, float]:
    runs = [_child_cpu([sys.executable, "-c", code], env)[0] for _ in range(repeat)]
    return min(runs), statistics.median(runs)


def heavy_loaded(env: dict[str, str]) -> list[str]:
    loaded = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"
    code = f"import json, sys, pipeline.definitions; print(json.dumps({loaded}))"
    _, done = _child_cpu([sys.executable, "-c", code], env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_times(env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """The top-level packages whose import took longest (cumulative seconds, one run)."""
    _, done = _child_cpu(
        [sys.executable, "-X", "importtime", "-c", "import pipeline.definitions"], env
    )
    cumulative: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and len(match[2]) % 2 == 0:
            name = match[3]
            if "." not in name:  # a package's own entry carries its submodules' time
                cumulative[name] = max(cumulative[name], int(match[1]) / 1e6)
    return sorted(cumulative.items(), key=lambda kv: -kv[1])[:top]


def definitions(repeat: int, top: int) -> None:
    base = {**os.environ}
    floor = cpu("import dagster, pandas", base, repeat)
    print(f"import dagster, pandas (the floor): best {floor[0]:.2f} s, median {floor[1]:.2f} s CPU")
    for strategy in STRATEGIES:
        env = {**base, "SIGNALS_STRATEGY": strategy}
        best, median = cpu("import pipeline.definitions", env, repeat)
        print(
            f"\nSIGNALS_STRATEGY={strategy}: import pipeline.definitions: best {best:.2f} s, "
            f"median {median:.2f} s CPU (user + sys, {repeat} processes)"
        )
        print(f"  heavy libraries loaded: {', '.join(heavy_loaded(env)) or 'none'}")
        print(f"  slowest imports (cumulative s, one run under -X importtime; top {top}):")
        for name, seconds in import_times(env, top):
            print(f"    {seconds:6.3f}  {name}")


LIVE_RUN = """
import json, sys, time
started = time.process_time()
from pipeline.definitions import defs
imported = time.process_time()
import dagster as dg
job = defs.resolve_job_def("portfolio_live_job")
result = job.execute_in_process(
    run_config={"ops": {"portfolio_signals": {"config": {"timeframe": %r, "candle_ms": %d}}}},
    instance=dg.DagsterInstance.ephemeral(),
    raise_on_error=False,
)
done = time.process_time()
print(json.dumps({
    "success": result.success,
    "import_s": imported - started,
    "run_s": done - imported,
    "loaded": sorted(m for m in %r if m in sys.modules),
}))
"""


def live(args: argparse.Namespace) -> None:
    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.timeframes import parse_date_ms, timeframe_ms
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.settings import Settings
    from pipeline.signals.candle import factor_basket
    from pipeline.store.database import Database, fresh_database, open_database, resolve_url
    from pipeline.trading_replay import install_model, pick_model, seed_candles

    settings = Settings.from_env({**os.environ, "SIGNALS_STRATEGY": "portfolio"})
    data_dir = args.data_dir or settings.data_dir
    if not data_dir:
        raise SystemExit("--data-dir (or SIGNALS_DATA_DIR): the candles to replay")
    tf = settings.decision_timeframe
    step = timeframe_ms(tf)
    candle_ms = parse_date_ms(args.start) // step * step
    record, why = pick_model(open_database(settings), tf, args.model, "portfolio")
    print(f"\nlive run: portfolio model {record.id} ({why}), decision candle {args.start} {tf}")
    symbols = list(dict.fromkeys([*record.config["universe"], *factor_basket(record)]))
    folder = CandleFolder(data_dir)
    code = LIVE_RUN % (tf, candle_ms, HEAVY)
    runs = []
    for _ in range(args.live_repeat):  # each run on a fresh copy: the same work every time
        url = fresh_database(resolve_url(settings), "signals_bench_imports")
        db = Database(url)
        seed_candles(db, folder, settings.exchange, symbols, settings.timeframes, candle_ms)
        install_model(db, record, {"reason": "bench/import_weight.py", "source_model": record.id})
        db.close()
        clock = ReplayClock(candle_ms + step + 60_000, speed=1.0)
        exchange = ReplayExchange(data_dir, clock, funding_dir=settings.funding_dir)
        with ReplayServer(exchange) as server, tempfile.TemporaryDirectory() as home:
            env = {
                **os.environ,
                "SIGNALS_STRATEGY": "portfolio",
                "SIGNALS_DATABASE_URL": url,
                "SIGNALS_SOURCE": "ccxt",
                "SIGNALS_API_URL": server.url,
                "SIGNALS_HOME": home,
                "SIGNALS_BROKER": "paper",
            }
            used, done = _child_cpu([sys.executable, "-c", code], env)
        runs.append((used, json.loads(done.stdout.strip().splitlines()[-1])))
    for used, report in runs:
        print(
            f"  one run's process: {used:.2f} s CPU in all (the Definitions import "
            f"{report['import_s']:.2f} s, the run {report['run_s']:.2f} s); success "
            f"{report['success']}; heavy libraries loaded: {', '.join(report['loaded']) or 'none'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="processes per figure")
    parser.add_argument("--top", type=int, default=12, help="slowest imports listed")
    parser.add_argument("--live", action="store_true", help="also time one live run's process")
    parser.add_argument("--live-repeat", type=int, default=2, help="live runs timed")
    parser.add_argument("--start", default="2021-12-20", help="the decision candle (ISO date)")
    parser.add_argument("--model", type=int, help="model id (default: production, else newest)")
    parser.add_argument("--data-dir", help="candle folder (default SIGNALS_DATA_DIR)")
    parser.add_argument("--skip-definitions", action="store_true", help="only the live run")
    args = parser.parse_args(argv)
    writes = "off (PYTHONDONTWRITEBYTECODE is set)" if sys.dont_write_bytecode else "on"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, writing bytecode: {writes}")
    if not args.skip_definitions:
        definitions(args.repeat, args.top)
    if args.live:
        live(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
