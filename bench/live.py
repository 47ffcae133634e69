"""Live latency: candle close (replay clock) → signal recorded → order acknowledged, with the
real Dagster daemon launching the real sensor's runs.

    .venv/bin/python bench/live.py [--candles 50] [--interval 5] [--candle-seconds 12]
                                   [--markets BTC/USDT:USDT] [--start 2023-01-02]

Set-up: a fresh database `signals_bench_live` on your store's server (your own record is not
touched) seeded with the candles before `--start`, the model `signals live --replay` would
pick (production, else the newest candidate: `make run` trains one) with its threshold set to
`--threshold` (default 0.5, so that orders are placed and timed), the replay exchange in
this process with its clock at `--start` running `3600 / --candle-seconds` times real time,
a private DAGSTER_HOME (queued run coordinator, one run at a time per market; runs and events
in a fresh database `signals_bench_live_dagster` on the same server), and
`dagster-daemon run` with `new_candle_sensor` turned on at `--interval` seconds.

Per run (one market × candle), from the replay clock's mapping to wall time, Dagster's run
record and the signal's own timestamps:

- sensor wait  = run created − candle close      (tick phase + the tick's own requests)
- run launch   = step start − run created         (queue, new process, imports, resources)
- own work     = order acknowledged (or execution done) − step start
- total        = order acknowledged − candle close

The reference, measured in this run: the model alone answering one window (`decide`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.tables import markdown_table

# It times the per-market live path (a run per market and candle); the portfolio live job
# (a run per candle, every market) is not timed here yet.
os.environ.setdefault("SIGNALS_STRATEGY", "barrier")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # dagster and dagster-daemon of this environment
DAGSTER_YAML = (REPO / "pipeline" / "dagster_dev.yaml").read_text()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def model_reference_ms(record, repeats: int = 500) -> float:
    """p50 of `decide` on one window of this model (the model answering, nothing else)."""
    from pipeline.features.registry import feature_names
    from pipeline.model.contract import load_for_inference
    from pipeline.signals.inference import decide

    loaded = load_for_inference(record, feature_names())
    rng = np.random.default_rng(0)
    window = rng.normal(size=(loaded.window, len(loaded.features))).astype(np.float32)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        decide(
            loaded.network,
            window,
            loaded.scaler.transform,
            loaded.features,
            model_id=loaded.model_id,
            market="x",
            timestamp=0,
            operating=loaded.operating,
            ev_scale=0.01,
        )
        times.append((time.perf_counter() - t) * 1000)
    return pct(times, 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candles", type=int, default=50)
    parser.add_argument("--interval", type=int, default=5, help="sensor interval, seconds")
    parser.add_argument(
        "--candle-seconds", type=float, default=12.0, help="real seconds per replayed 1h candle"
    )
    parser.add_argument("--markets", default="BTC/USDT:USDT")
    parser.add_argument("--start", default="2023-01-02")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(
            "SIGNALS_DATA_DIR", str(REPO.parent / "shared" / "data" / "binance-usdm-1h")
        ),
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="confidence threshold of the bench's copy of the model (default 0.5: every candle "
        "decides long or short, so orders are placed and their acknowledgement is timed)",
    )
    parser.add_argument("--json", help="write the per-run figures here")
    args = parser.parse_args(argv)

    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.timeframes import parse_date_ms
    from pipeline.exchange.ids import BINANCE_USDM
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.settings import Settings
    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL
    from pipeline.store.database import Database, fresh_database, open_database, resolve_url
    from pipeline.store.studies import sqlalchemy_url
    from pipeline.trading_replay import install_model, pick_model, seed_candles

    settings = Settings.from_env()
    markets = [m.strip() for m in args.markets.split(",") if m.strip()]
    timeframes = ["1h", "4h", "1d"]
    step = 3_600_000
    start = parse_date_ms(args.start) // step * step
    record, why = pick_model(open_database(settings), "1h")
    print(f"model {record.id}: {why}", file=sys.stderr)
    reference = model_reference_ms(record)

    url = fresh_database(resolve_url(settings), "signals_bench_live")
    # Dagster's runs, events and schedules: a fresh database of their own on the same server
    # (an old bench's run keys would stop this one's runs).
    dagster_url = sqlalchemy_url(
        fresh_database(resolve_url(settings), "signals_bench_live_dagster"),
        driver="postgresql+psycopg2",
    )
    db = Database(url)
    print("seeding candles …", file=sys.stderr)
    seed_candles(db, CandleFolder(args.data_dir), BINANCE_USDM, markets, timeframes, start)
    record.config = {**record.config, "threshold": args.threshold}  # the bench's copy only
    install_model(db, record, {"reason": "bench/live.py", "source_model": record.id})

    speed = 3600.0 / args.candle_seconds
    home = Path(tempfile.mkdtemp(prefix="bench-live-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    exchange = ReplayExchange(args.data_dir, ReplayClock(start + step - 2_000, speed=speed))
    with ReplayServer(exchange) as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home / "dagster"),
            ENV_DAGSTER_PG_URL: dagster_url,
            "SIGNALS_HOME": str(home),
            "SIGNALS_DATABASE_URL": url,
            "SIGNALS_SOURCE": "ccxt",
            "SIGNALS_API_URL": server.url,
            "SIGNALS_MARKETS": ",".join(markets),
            "SIGNALS_TIMEFRAMES": ",".join(timeframes),
            "SIGNALS_SENSOR_INTERVAL_S": str(args.interval),
            "SIGNALS_MAX_NOTIONAL": "1e12",
        }
        location = ["-m", "pipeline.definitions"]
        subprocess.run(
            [str(BIN / "dagster"), "sensor", "start", "new_candle_sensor", *location],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        clock_wall0 = time.time()
        clock_ms0 = exchange.clock.now_ms()
        log = open(home / "daemon.log", "w")  # noqa: SIM115
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", *location],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wanted = args.candles * len(markets)
        deadline = time.time() + args.candles * args.candle_seconds + 180
        done = 0
        try:
            while time.time() < deadline:
                time.sleep(2)
                with db.connection() as conn:
                    done = conn.execute(
                        "SELECT count(*) FROM signals WHERE timings ? 'executed_at'"
                    ).fetchone()[0]
                    conn.commit()
                print(f"\r{done}/{wanted} runs executed", end="", file=sys.stderr)
                if done >= wanted:
                    break
        finally:
            daemon.terminate()
            daemon.wait(30)
            log.close()
        print(file=sys.stderr)

    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ[ENV_DAGSTER_PG_URL] = dagster_url
    instance = dg.DagsterInstance.get()
    records = instance.get_run_records(dg.RunsFilter(job_name="live_inference_job"))
    per_candle: dict[tuple, int] = {}
    for r in records:
        key = (r.dagster_run.tags.get("market"), r.dagster_run.tags.get("signals/candle"))
        per_candle[key] = per_candle.get(key, 0) + 1
    created = {
        (
            r.dagster_run.tags.get("market"),
            r.dagster_run.tags.get("signals/candle"),
        ): r.create_timestamp.timestamp()
        for r in records
    }
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT s.symbol, (extract(epoch FROM s.candle_time) * 1000)::bigint, s.timings,
                      extract(epoch FROM max(o.acknowledged_at))
               FROM signals s LEFT JOIN orders o ON o.signal_id = s.id
               GROUP BY s.id ORDER BY s.candle_time"""
        ).fetchall()
        conn.commit()
    from pipeline.data.timeframes import ms_to_iso
    from pipeline.exchange.markets import market_id

    runs = []
    for symbol, candle_ms, timings, ack in rows:
        if "executed_at" not in timings:
            continue
        close_wall = clock_wall0 + (candle_ms + step - clock_ms0) / speed / 1000.0
        made = created.get((market_id(symbol), ms_to_iso(candle_ms)))
        if made is None:
            continue
        end = float(ack) if ack is not None else timings["executed_at"]
        runs.append(
            {
                "symbol": symbol,
                "candle_ms": candle_ms,
                "ordered": ack is not None,
                "sensor_wait_s": made - close_wall,
                "run_launch_s": timings["step_started_at"] - made,
                "own_work_ms": (end - timings["step_started_at"]) * 1000,
                "signal_recorded_s": timings["signal_recorded_at"] - close_wall,
                "total_s": end - close_wall,
                **{
                    k: timings[k]
                    for k in (
                        "refresh_ms",
                        "model_ms",
                        "load_ms",
                        "features_ms",
                        "decide_ms",
                        "execute_ms",
                    )
                    if k in timings
                },
            }
        )
    if not runs:
        print("no run finished: see", home / "daemon.log", file=sys.stderr)
        return 1
    print(
        f"live latency: {len(runs)} runs ({len(markets)} market(s)), sensor interval "
        f"{args.interval} s, a 1h candle every {args.candle_seconds:g} s (speed {speed:g}x); "
        f"{sum(r['ordered'] for r in runs)} runs placed orders"
    )
    counts = list(per_candle.values())
    print(
        f"runs per market × candle: min {min(counts)}, max {max(counts)} over {len(counts)} "
        f"(exactly one expected); {len(rows)} signals recorded"
    )
    measures = (
        ("sensor_wait_s", "s"),
        ("run_launch_s", "s"),
        ("own_work_ms", "ms"),
        ("refresh_ms", "ms"),
        ("model_ms", "ms"),
        ("load_ms", "ms"),
        ("features_ms", "ms"),
        ("decide_ms", "ms"),
        ("execute_ms", "ms"),
        ("signal_recorded_s", "s"),
        ("total_s", "s"),
    )
    rows = []
    for key, unit in measures:
        values = [r[key] for r in runs if key in r]
        rows.append(
            [key, *(f"{v:.3f} {unit}" for v in (pct(values, 50), pct(values, 95), max(values)))]
        )
    print(markdown_table(["measure", "p50", "p95", "max"], rows))
    own = pct([r["own_work_ms"] for r in runs], 50)
    print(
        f"reference, the model alone (decide, one window): p50 {reference:.3f} ms; "
        f"own work p50 / model = {own / reference:.0f}x"
    )
    budget = args.interval + 5
    total95 = pct([r["total_s"] for r in runs], 95)
    print(
        f"goal: own work < 100 ms: {'MET' if own < 100 else 'NOT MET'} (p50 {own:.1f} ms); "
        f"close → ack p95 ≤ interval + 5 s = {budget} s: "
        f"{'MET' if total95 <= budget else 'NOT MET'} ({total95:.2f} s)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
