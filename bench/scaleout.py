"""Scale-out: the main job in-process, on one Celery worker and on two, in one invocation.

Run on demand (never part of the test suite; `make bench-scaleout`):

    .venv/bin/python bench/scaleout.py                       # the sample's 5 markets, 2021
    .venv/bin/python bench/scaleout.py --markets BTCUSDT,ETHUSDT --budget 1

Each mode runs the whole main job (`signals run`: ohlcv → market_factor → features →
selected_features → hyperparameter_study → lstm_model → backtest_report → production_model)
on the same candles, a short window so that a run takes minutes: the sample's 1h candles of
`--start` … `--end` (default 2021), served by the replay exchange that `signals run` starts,
timeframes 1h, 4h and 1d (15 ohlcv and features partitions with five markets, 3 market
factors, 5 backtests), train end 2021-09-30, validation end 2021-12-31, `--epochs` 2, a
study of `--budget` trials (default 2; the main job's default is 8). Modes:

- in-process: `signals run` (the default executor: one run after another in its process);
- celery ×1 and celery ×2: `signals run --executor celery` against 1 or 2 `signals worker`
  processes (concurrency 1 each) on a Redis broker started for the mode (`redis-server` on a
  free port). The workers are started and answering before the clock starts: they are
  long-lived services, their start (importing torch and the assets) is not the job's time.

Every mode gets its own database on one embedded PostgreSQL server started for the benchmark
(and stopped after), its own `SIGNALS_HOME` and Dagster instance (storage on that server), and
its own study (a prefix per mode: one name would resume the first mode's study). The work
folder is deleted at the end unless `--keep`. Torch runs
`--threads` threads (default 1) in every process of every mode: two workers then use the two
cores of this machine, and training is bit-equal across processes, so the materialisations
can be compared exactly (`tests/helpers/materialisations.py`: candle rows, every Parquet asset,
the study's best trial, the model's weights hash, metrics and curves, the backtest reports).

Wall time is `signals run`'s, from start to exit (its own start, ~10-20 s of imports, counted
in every mode). Ratio = in-process wall ÷ mode wall (above 1: faster than in-process). The
stage table gives when each stage's last run ended, as seconds since the previous stage's
(the first stage's includes the command's start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import default_data_dir  # noqa: E402

from pipeline.data.csv_source import CandleFolder  # noqa: E402
from pipeline.store.database import fresh_database  # noqa: E402
from pipeline.store.embedded import embedded_url, stop_embedded  # noqa: E402
from pipeline.tables import markdown_table  # noqa: E402
from tests.helpers.celery_cluster import local_cluster  # noqa: E402
from tests.helpers.folders import write_folder  # noqa: E402
from tests.helpers.materialisations import MainJobOutput, differences  # noqa: E402

STAGES = (
    "ohlcv",
    "market_factor",
    "features",
    "selected_features",
    "hyperparameter_study",
    "lstm_model",
    "backtest_report",
    "production_model",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--markets", default="BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT")
    parser.add_argument("--start", default="2021-01-01")
    parser.add_argument("--end", default="2022-01-01", help="exclusive")
    parser.add_argument("--train-end", default="2021-09-30")
    parser.add_argument("--validation-end", default="2021-12-31")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--budget", type=int, default=2, help="the study's trials")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--workers", default="1,2", help="Celery modes: workers in each")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mode")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, homes)")
    return parser.parse_args()


def candle_folder(args: argparse.Namespace, root: Path) -> tuple[Path, list[str]]:
    """The sample's markets cut to [start, end), in the sample's format."""
    folder = CandleFolder(Path(args.data_dir))
    wanted = args.markets.split(",")
    start, end = (pd.Timestamp(t, tz="UTC").value // 1_000_000 for t in (args.start, args.end))
    frames = {}
    for market, symbol in zip(folder.market_ids(), folder.symbols(), strict=True):
        if market in wanted:
            frame = folder.read(symbol)
            frames[market] = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]
    missing = set(wanted) - set(frames)
    if missing:
        raise SystemExit(f"not in {args.data_dir}: {sorted(missing)}")
    symbols = [s for m, s in zip(folder.market_ids(), folder.symbols(), strict=True) if m in frames]
    return write_folder(root / "candles", frames), symbols


def timed_run(cli_args: list[str], env: dict[str, str], log: Path, timeout: float) -> dict:
    """`signals run …` from the repository root: wall seconds, and when each stage's last
    line came (seconds from the start). Exits the benchmark with the log on a failure."""
    ends: dict[str, float] = {}
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", *cli_args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )
        assert process.stdout is not None
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        for line in process.stdout:
            out.write(line)
            stage = line.split(" ", 1)[0]
            if stage in STAGES:
                ends[stage] = time.perf_counter() - start
        code = process.wait()
        watchdog.cancel()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"signals run {' '.join(cli_args)} failed ({code}):\n{log.read_text()}")
    return {"wall": wall, "ends": ends}


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="signals-bench-scaleout-"))
    folder, symbols = candle_folder(args, root)
    pgdata = root / "pg"
    server = embedded_url(pgdata)
    common = {
        **os.environ,
        "SIGNALS_DATA_DIR": str(folder),
        "SIGNALS_MARKETS": ",".join(symbols),
        "SIGNALS_TIMEFRAMES": "1h,4h,1d",
        "SIGNALS_SINCE": args.start,
        "SIGNALS_TRAIN_END": args.train_end,
        "SIGNALS_VALIDATION_END": args.validation_end,
        "SIGNALS_MAX_EPOCHS": str(args.epochs),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    common.pop("SIGNALS_API_URL", None)
    run_id = uuid.uuid4().hex[:6]
    modes = ["in-process", *(f"celery ×{n}" for n in args.workers.split(","))]
    results: dict[str, dict] = {}
    outputs: dict[str, MainJobOutput] = {}
    print(
        f"{len(symbols)} markets × 1h,4h,1d, {args.start} … {args.end} (exclusive), "
        f"{args.epochs} epochs, a {args.budget}-trial study, {args.threads} torch thread(s) "
        f"per process; work folder {root}",
        flush=True,
    )
    try:
        for mode in modes:
            slug = mode.replace(" ×", "-").replace("-process", "_process")
            home = root / slug
            url = fresh_database(server, f"bench_{slug.replace('-', '_')}")
            env = {
                **common,
                "SIGNALS_HOME": str(home),
                "DAGSTER_HOME": str(home / "dagster"),
                "SIGNALS_DATABASE_URL": url,
            }
            config = {
                "hyperparameter_study": {
                    "budget": args.budget,
                    "study_prefix": f"bench-{slug}-{run_id}",
                    "train_start": args.start,
                },
                "lstm_model": {"train_start": args.start},
            }
            cli_args = ["--config", json.dumps(config)]
            log = root / f"{slug}.log"
            if mode == "in-process":
                results[mode] = timed_run(cli_args, env, log, args.timeout)
            else:
                n = int(mode.rsplit("×", 1)[1])
                with local_cluster(root / f"cluster-{slug}", env) as cluster:
                    for i in range(n):
                        cluster.start_worker(f"w{i + 1}")
                    cluster.wait_for_workers(timeout_s=300)
                    celery_env = {**env, "SIGNALS_CELERY_BROKER": cluster.broker}
                    results[mode] = timed_run(
                        ["--executor", "celery", *cli_args], celery_env, log, args.timeout
                    )
            outputs[mode] = MainJobOutput(home, url)
            print(f"{mode}: {results[mode]['wall']:.1f} s", flush=True)
        reference = results["in-process"]["wall"]
        rows = []
        for mode in modes:
            found = (
                {} if mode == "in-process" else differences(outputs["in-process"], outputs[mode])
            )
            unequal = sorted(k for k, v in found.items() if v)
            matched = "reference" if mode == "in-process" else ("yes" if not unequal else "NO")
            wall = results[mode]["wall"]
            rows.append([mode, f"{wall:.1f}", f"{reference / wall:.2f}", matched])
            for name in unequal:
                print(f"  {mode}: {name} differs: {found[name]}")
        print()
        print(markdown_table(["mode", "wall s", "ratio (in-process ÷ mode)", "same"], rows))
        print()
        stage_rows = []
        for stage in STAGES:
            cells = [stage]
            for mode in modes:
                ends = results[mode]["ends"]
                done = [ends[s] for s in STAGES[: STAGES.index(stage)] if s in ends]
                spent = ends[stage] - (max(done) if done else 0.0) if stage in ends else None
                cells.append(f"{spent:.1f}" if spent is not None else "")
            stage_rows.append(cells)
        print(markdown_table(["stage (s, ends apart)", *modes], stage_rows))
    finally:
        stop_embedded(pgdata)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
