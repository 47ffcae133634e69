"""The `signals` command: ingest candles, serve the replay exchange, run the main job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from importlib import resources as package_files
from pathlib import Path

from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.exchange.ids import BYBIT, DEFAULT_EXCHANGE
from pipeline.exchange.markets import normalise_symbol
from pipeline.settings import DEFAULT_SINCE, Settings

DEV_INSTANCE = package_files.files("pipeline").joinpath("dagster_dev.yaml")


class CliError(Exception):
    """A failure to report in one line, exit status 1."""


def _csv_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _progress(total: int, enabled: bool, unit: str = "partition"):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, leave=False)


# -- ingest --------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.data.ingest import ingest_partition
    from pipeline.data.sources import open_source
    from pipeline.exchange.retry import RetryPolicy
    from pipeline.store.database import open_database

    settings = Settings.from_env()
    symbols = [normalise_symbol(m) for m in args.markets]
    for timeframe in args.timeframes:
        timeframe_ms(timeframe)  # unknown timeframes fail before any work
    data_dir = args.data_dir or (str(settings.data_dir) if settings.data_dir else None)
    source = open_source(
        args.source,
        args.exchange or settings.exchange,
        args.api_url or settings.api_url,
        data_dir,
        RetryPolicy(attempts=args.retries),
        args.timeout_ms,
    )
    since_ms = parse_date_ms(args.since or settings.since)
    db = open_database(settings)
    show = sys.stderr.isatty() and not args.json
    results = []
    partitions = [(s, t) for s in symbols for t in args.timeframes]
    with _progress(len(partitions), show) as bar:
        for index, (symbol, timeframe) in enumerate(partitions):
            bar.set_description(f"{symbol} {timeframe}")

            def on_page(done: int, total: int, index: int = index) -> None:
                bar.n = index + (done / total if total else 1.0)
                bar.refresh()

            results.append(ingest_partition(db, source, symbol, timeframe, since_ms, on_page))
            bar.n = index + 1
            bar.refresh()
    if args.json:
        print(json.dumps({"partitions": [r.to_json() for r in results]}))
    else:
        for r in results:
            print(
                f"{r.symbol:<16} {r.timeframe:>4}  +{r.rows_added:<7} total {r.rows_total:<7} "
                f"{r.to_json()['first']} → {r.to_json()['last']}  gaps {r.gaps}"
            )
    return 0


# -- replay exchange -----------------------------------------------------------------------
def cmd_replay_exchange(args: argparse.Namespace) -> int:
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.faults import FaultPlan
    from pipeline.replay.server import ReplayExchange, ReplayServer

    clock = ReplayClock(parse_date_ms(args.clock) if args.clock else None, args.speed)
    # The trading side accepts the same credentials the exchange broker reads, when set.
    credentials = {
        name: os.environ[var]
        for name, var in (("api_key", "SIGNALS_API_KEY"), ("api_secret", "SIGNALS_API_SECRET"))
        if os.environ.get(var)
    }
    exchange = ReplayExchange(args.data_dir, clock, balance=args.balance, **credentials)
    if args.fault:
        exchange.set_faults(FaultPlan.parse(args.fault, args.fault_delay, args.seed))
    server = ReplayServer(exchange, port=args.port, host=args.host)
    print(
        f"replay exchange on {server.url} serving {', '.join(exchange.data.symbols())} "
        f"(clock {'real time' if args.clock is None else args.clock}, speed {args.speed}x); "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


# -- main job ------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """The main job: materialise the asset chain for every configured partition."""
    import dagster as dg

    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer

    settings = Settings.from_env()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():  # local storage under DAGSTER_HOME; live runs queued
        instance_yaml.write_text(DEV_INSTANCE.read_text(encoding="utf-8"))

    from pipeline.definitions import build_resources
    from pipeline.main_job import STAGES, plan, run_main_job

    stages = tuple(args.assets) if args.assets else STAGES
    steps = plan(stages)
    with ExitStack() as stack:
        if settings.data_dir and settings.source == "ccxt" and not settings.api_url:
            server = ReplayServer(ReplayExchange(settings.data_dir, ReplayClock())).start()
            stack.callback(server.stop)
            settings = Settings(**{**settings.__dict__, "api_url": server.url})
            print(f"replaying {settings.data_dir} through ccxt at {server.url}", file=sys.stderr)
        instance = stack.enter_context(dg.DagsterInstance.get())
        bar = stack.enter_context(_progress(len(steps), sys.stderr.isatty(), unit="run"))
        failures = []
        for outcome in run_main_job(instance, build_resources(settings), stages):
            bar.update(1)
            bar.clear()
            print(_describe(outcome))
            if not outcome.success:
                failures.append(outcome)
                print(
                    f"{outcome.asset} {outcome.partition or ''}: {outcome.error()}", file=sys.stderr
                )
    if failures:
        raise CliError(
            f"{len(failures)} run(s) failed, starting with {failures[0].asset} "
            f"{failures[0].partition or ''}; later stages were not run"
        )
    print(f"materialised {', '.join(stages)}; runs recorded in {dagster_home}")
    if "backtest_report" in stages:
        print(f"backtest reports (markdown + equity.png per market): {settings.home / 'reports'}")
    return 0


def _describe(outcome) -> str:
    """One line per materialisation, with the figures a user checks first."""
    meta = outcome.metadata()
    if not outcome.success:
        return f"{outcome.asset:<17} {outcome.partition or '':<14} FAILED"
    verdict = " ".join(
        f"{name.removeprefix('ohlcv_')}={'ok' if ok else 'NO'}"
        for name, ok in outcome.checks().items()
    )
    if outcome.asset == "ohlcv":
        return (
            f"ohlcv  {meta['market']:<16} {meta['timeframe']:>4}  +{meta['rows_added']:<7} "
            f"total {meta['rows_total']:<7} {meta['first_candle']} → {meta['last_candle']}  "
            f"gaps {meta['gaps']}  checks: {verdict}"
        )
    if outcome.asset == "selected_features":
        uplift = meta.get("uplift") or {}
        scores = {k: v for k, v in uplift.items() if k.startswith(("all_", "selected_"))}
        shown = "  ".join(
            f"{k}: acc {v['accuracy']:.4f} logloss {v['log_loss']:.4f}" for k, v in scores.items()
        )
        ci = uplift.get("accuracy_uplift_95ci") or [float("nan")] * 2
        return (
            f"selected_features  {meta.get('selected')} selected  validation {shown}  "
            f"accuracy uplift {uplift.get('accuracy_uplift', float('nan')):+.4f} "
            f"(95% CI {ci[0]:+.4f} … {ci[1]:+.4f})"
        )
    if outcome.asset == "lstm_model":
        return (
            f"lstm_model  candidate {meta['model_id']}: {meta['parameters']} parameters, "
            f"{meta['epochs']} epochs ({meta['stopped']}), validation accuracy "
            f"{meta['val_accuracy']:.4f} vs majority {meta['val_majority_accuracy']:.4f}, "
            f"gap {meta['gap']:+.4f}  checks: {verdict}"
        )
    if outcome.asset == "backtest_report":
        return f"backtest_report {outcome.partition}: {meta['report']}\n{meta['table']}"
    if outcome.asset == "production_model":
        verdict_text = "PROMOTED" if meta["passed"] else "REFUSED"
        return (
            f"production_model  candidate {meta['candidate']} {verdict_text}: {meta['reasons']}; "
            + (
                f"production is model {meta['production']}"
                if meta["production"] != -1
                else "no model is in production (live runs record nothing until one is)"
            )
        )
    details = "  ".join(
        f"{k} {v}" for k, v in meta.items() if k in ("rows", "complete_rows", "markets")
    )
    return f"{outcome.asset:<17} {outcome.partition or '':<14} {details}"


# -- features ------------------------------------------------------------------------------
def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.features.registry import REGISTRY

    if args.list:
        if args.json:
            print(json.dumps([_spec_json(spec, args.timeframe) for spec in REGISTRY], indent=1))
        else:
            print(f"{'#':>2}  {'name':<22} {'family':<10} {'timeframe':<9} {'warmup':>6}  params")
            for i, spec in enumerate(REGISTRY, 1):
                params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
                print(
                    f"{i:>2}  {spec.name:<22} {spec.family:<10} {spec.timeframe:<9} "
                    f"{spec.warmup_at(args.timeframe):>6}  {params}"
                )
        return 0
    if not (args.data_dir and args.markets and args.out):
        raise CliError("features needs --list, or --data-dir, --markets and --out")
    from pipeline.data.csv_source import CandleFolder
    from pipeline.features.compute import compute_features
    from pipeline.features.schema import validate_features

    timeframe_ms(args.timeframe)
    folder = CandleFolder(args.data_dir)
    symbols = [normalise_symbol(m) for m in args.markets]
    candles = {s: folder.read(s, args.timeframe) for s in symbols}
    matrix = compute_features(candles, args.timeframe)
    validate_features(matrix, args.timeframe)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    matrix.to_parquet(out, index=False)
    print(f"{len(matrix)} rows × {matrix.shape[1] - 2} features → {out}")
    return 0


def _spec_json(spec, timeframe: str) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "timeframe": spec.timeframe,
        "params": dict(spec.params),
        "warmup": spec.warmup_at(timeframe),
    }


# -- evaluation ----------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Walk-forward evaluation of the whole chain on a candle folder."""
    from dataclasses import replace

    from pipeline.backtest.config import BacktestConfig
    from pipeline.backtest.report import write_report
    from pipeline.data.csv_source import CandleFolder
    from pipeline.evaluation.summary import claims_table, summary_table
    from pipeline.evaluation.walk_forward import EvaluationConfig, evaluate
    from pipeline.model.training import TrainConfig

    timeframe_ms(args.timeframe)
    markets = tuple(normalise_symbol(m) for m in args.markets)
    test_markets = tuple(normalise_symbol(m) for m in args.test_markets or ())
    folder = CandleFolder(args.data_dir)
    candles = {s: folder.read(s, args.timeframe) for s in dict.fromkeys(markets + test_markets)}
    train = TrainConfig(seed=args.seed)
    if args.max_epochs:
        train = replace(train, max_epochs=args.max_epochs)
    cfg = EvaluationConfig(
        markets=markets,
        test_markets=test_markets,
        timeframe=args.timeframe,
        train_start=args.train_start,
        train_end=args.train_end,
        test_start=args.test_start,
        test_end=args.test_end,
        folds=args.folds,
        threshold=args.threshold,
        coverage=args.coverage,
        train=train,
        backtest=BacktestConfig(fee=args.fee, slippage_bps=args.slippage_bps),
    )
    quiet = args.json == "-"
    report = evaluate(candles, cfg, log=lambda m: print(m, file=sys.stderr) if not quiet else None)
    backtests = report.pop("_backtests")
    out_dir = Path(args.report_dir)
    written = write_report(
        backtests,
        out_dir,
        f"Walk-forward test {args.test_start} … "
        f"{args.test_end}, {len(cfg.evaluated_markets)} markets",
    )
    report["report"] = {"png": str(written.png_path), "markdown": str(written.markdown_path)}
    text = json.dumps(report, indent=1, default=_json_default)
    if args.json == "-":
        print(text)
        return 0
    if args.json:
        Path(args.json).write_text(text)
    print(summary_table(report))
    print()
    print(claims_table(report))
    print(
        f"\nreport: {written.markdown_path} (equity curves: {written.png_path})"
        + (f"; JSON: {args.json}" if args.json else "")
    )
    return 0


# -- live --------------------------------------------------------------------------------
def cmd_live(args: argparse.Namespace) -> int:
    """Live trading replayed: the real sensor and job over the replay exchange, then parity."""
    if not args.replay:
        raise CliError(
            "live trading runs in Dagster: `make ui` and turn on new_candle_sensor (README); "
            "`signals live --replay` replays it offline"
        )
    from pipeline.backtest.config import BacktestConfig
    from pipeline.data.csv_source import CandleFolder
    from pipeline.exchange.markets import market_id
    from pipeline.live_replay import (
        LiveReplay,
        install_model,
        parity,
        pick_model,
        replay_resources,
        seed_candles,
    )
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.store.database import Database, fresh_database, resolve_url

    settings = Settings.from_env()
    data_dir = args.data_dir or settings.data_dir
    if not data_dir:
        raise CliError("--data-dir (or SIGNALS_DATA_DIR) is needed: the candles to replay")
    timeframe = settings.base_timeframe
    step = timeframe_ms(timeframe)
    start = parse_date_ms(args.start) // step * step
    if args.candles < 2:
        raise CliError("--candles must be at least 2")
    folder = CandleFolder(data_dir)
    symbols = list(settings.markets)
    missing = [s for s in symbols if s not in folder.symbols()]
    if missing:
        raise CliError(f"{data_dir} has no candles for {', '.join(missing)}")
    from pipeline.store.database import open_database

    record, why = pick_model(open_database(settings), timeframe, args.model)
    print(f"replaying model {record.id}, {why}", file=sys.stderr)

    url = fresh_database(resolve_url(settings), "signals_replay")
    db = Database(url)
    timeframes = list(settings.timeframes)
    print(f"seeding candles before {args.start} into database signals_replay …", file=sys.stderr)
    seed_candles(db, folder, settings.exchange, symbols, timeframes, start)
    note = {"reason": "signals live --replay", "source_model": record.id}
    if args.threshold is not None:  # the replay database's copy only; the store is untouched
        record.config = {**record.config, "threshold": args.threshold}
        note["threshold"] = args.threshold
        print(f"confidence threshold set to {args.threshold} for this replay", file=sys.stderr)
    install_model(db, record, note)
    exchange = ReplayExchange(data_dir, ReplayClock(start, speed=1.0), balance=args.balance)
    closes = [start + (k + 1) * step for k in range(args.candles)]
    with ReplayServer(exchange) as server:
        resources = replay_resources(
            url,
            server.url,
            str(settings.home),
            exchange=settings.exchange,
            since=settings.since,
            fee=args.fee,
            balance=args.balance,
            risk_fraction=args.risk_fraction,
        )
        replay = LiveReplay(resources, exchange)
        bar = _progress(len(closes), sys.stderr.isatty(), unit="candle")
        with bar:
            outcomes = replay.run(closes, on_tick=lambda _: bar.update(1))
    failures = [key for o in outcomes for key in o.failures]
    # The candle after the last decided one: the backtest acts on the last decision at its open.
    seed_candles(db, folder, settings.exchange, symbols, timeframes, closes[-1] + step)
    costs = BacktestConfig(timeframe=timeframe, fee=args.fee, position_size=args.risk_fraction)
    decided = [c - step for c in closes]
    reports = {}
    for symbol in symbols:
        reports[symbol] = parity(
            db,
            settings.exchange,
            symbol,
            timeframe,
            symbols,
            timeframes,
            decided,
            costs,
            f"paper-{market_id(symbol)}",
            args.balance,
        )
    db.close()
    print(f"{len(closes)} candles × {len(symbols)} markets, {len(failures)} failed run(s)")
    print(
        "| market | decisions | same as backtest | max |Δp| | round trips | live return |"
        " backtest return | max |Δ trade| |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for symbol, r in reports.items():
        print(
            f"| {symbol} | {r.compared}/{r.live_decisions} | "
            f"{'yes' if r.identical_decisions else 'NO'} | {r.probability_max_abs_diff:.1e} | "
            f"{r.trades_compared} | {r.live_return:+.4%} | {r.backtest_return:+.4%} | "
            f"{r.trade_max_abs_diff:.1e} |"
        )
    if args.json:
        payload = {s: r.to_json() for s, r in reports.items()}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=_json_default))
    bad = [s for s, r in reports.items() if not (r.identical_decisions and r.same_trades)]
    if failures or bad:
        raise CliError(
            f"parity broken: {len(failures)} failed run(s); decisions or trades differ for "
            f"{', '.join(bad) or 'no market'}"
        )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Compare the broker's positions and open orders with the book; optionally adopt."""
    from pipeline.definitions import broker_resource
    from pipeline.execution.manager import PositionManager
    from pipeline.store.database import open_database

    settings = Settings.from_env()
    db = open_database(settings)
    # Outside a run: resolve the resource's config (the keys' EnvVars) as Dagster would.
    resource = broker_resource(settings).process_config_and_initialize()
    broker = resource.open(db)
    manager = PositionManager(
        db,
        broker,
        resource.risk(1),
        settings.exchange,
        settings.base_timeframe,
        timeframe_ms(settings.base_timeframe),
    )
    differences = manager.adopt() if args.adopt else manager.reconcile()
    for d in differences:
        print(f"{d.symbol} {d.what}: book {d.book}, broker {d.broker}")
    if not differences:
        print(f"account {broker.name}: book and broker agree")
    elif args.adopt:
        print("the book now holds what the broker holds")
    return 1 if differences and not args.adopt else 0


def cmd_kill(args: argparse.Namespace) -> int:
    """The kill switch file: while it exists, the next live run flattens and nothing trades."""
    settings = Settings.from_env()
    path = settings.home / "KILL_SWITCH"
    if args.action == "on":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("trading stopped by `signals kill on`\n")
    elif args.action == "off":
        path.unlink(missing_ok=True)
    print(f"kill switch {'ON' if path.exists() else 'off'} ({path})")
    return 0


def _json_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# -- database ------------------------------------------------------------------------------
def cmd_db(args: argparse.Namespace) -> int:
    from pipeline.store.database import open_database, resolve_url
    from pipeline.store.embedded import stop_embedded

    settings = Settings.from_env()
    if args.action == "url":
        print(resolve_url(settings))
    elif args.action == "migrate":
        open_database(settings)
        print("migrations applied")
    elif args.action == "stop":
        if settings.database_url:
            raise CliError("SIGNALS_DATABASE_URL is set: that server is not ours to stop")
        print("stopped" if stop_embedded(settings.pgdata) else "not running")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signals",
        description="futures-signals: candles in, confident signals out. Settings come from "
        "SIGNALS_* environment variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and progress")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest candles into PostgreSQL, incrementally")
    ingest.add_argument("--source", choices=("ccxt", "csv"), required=True)
    ingest.add_argument(
        "--exchange", help=f"ccxt exchange id: {DEFAULT_EXCHANGE} (default) or {BYBIT}"
    )
    ingest.add_argument("--api-url", help="point ccxt at another host (replay exchange, testnet)")
    ingest.add_argument("--data-dir", help="candle folder for --source csv")
    ingest.add_argument(
        "--markets",
        type=_csv_list,
        required=True,
        help="unified symbols, e.g. BTC/USDT:USDT,ETH/USDT:USDT",
    )
    ingest.add_argument("--timeframes", type=_csv_list, required=True, help="e.g. 1h,4h,1d")
    ingest.add_argument(
        "--since",
        help=f"first candle when nothing is stored (default SIGNALS_SINCE or {DEFAULT_SINCE})",
    )
    ingest.add_argument("--retries", type=int, default=5, help="attempts per request (default 5)")
    ingest.add_argument(
        "--timeout-ms", type=int, default=10_000, help="per request (default 10000)"
    )
    ingest.add_argument("--json", action="store_true", help="print a JSON summary")
    ingest.set_defaults(func=cmd_ingest)

    replay = sub.add_parser(
        "replay-exchange", help="serve a candle folder over Binance USDⓈ-M's REST API"
    )
    replay.add_argument("--data-dir", required=True, help="folder of MARKETID.csv[.gz] 1h files")
    replay.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free one")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--clock", help="replay clock start (ISO date); default: real time")
    replay.add_argument("--speed", type=float, default=1.0, help="replay seconds per real second")
    replay.add_argument(
        "--fault",
        help="fail requests: 429|500|timeout|lost (carried out, answer lost) followed by :N "
        "(the next N requests) or :0.2 (a share of them), e.g. 500:3",
    )
    replay.add_argument(
        "--fault-delay",
        type=float,
        default=15.0,
        help="seconds a 'timeout' or 'lost' fault hangs (default 15)",
    )
    replay.add_argument("--seed", type=int, default=0, help="seed for share-based faults")
    replay.add_argument(
        "--balance", type=float, default=10_000.0, help="USDT wallet balance (default 10000)"
    )
    replay.set_defaults(func=cmd_replay_exchange)

    run = sub.add_parser(
        "run",
        help="the main job: materialise ohlcv → market_factor → features → selected_features → "
        "lstm_model → backtest_report → production_model for the configured markets, "
        "through Dagster",
    )
    run.add_argument(
        "--assets", type=_csv_list, help="only these stages, e.g. ohlcv (default: the whole chain)"
    )
    run.set_defaults(func=cmd_run)

    feats = sub.add_parser(
        "features", help="list the 79 candidate features, or compute them from a candle folder"
    )
    feats.add_argument("--list", action="store_true", help="print the feature registry")
    feats.add_argument("--json", action="store_true", help="with --list: a JSON array")
    feats.add_argument("--data-dir", help="candle folder (MARKETID.csv[.gz] of 1h candles)")
    feats.add_argument("--markets", type=_csv_list, help="e.g. BTC/USDT:USDT,ETH/USDT:USDT")
    feats.add_argument("--timeframe", default="1h", help="base timeframe (default 1h)")
    feats.add_argument("--out", help="Parquet file: market, timestamp, then the 79 features")
    feats.set_defaults(func=cmd_features)

    ev = sub.add_parser(
        "evaluate",
        help="walk-forward evaluation of the whole chain on a candle folder, beside baselines",
    )
    ev.add_argument("--data-dir", required=True, help="candle folder (MARKETID.csv[.gz], 1h)")
    ev.add_argument("--markets", type=_csv_list, required=True, help="markets to fit on")
    ev.add_argument("--test-markets", type=_csv_list, help="markets to test on (default: same)")
    ev.add_argument("--timeframe", default="1h")
    for name in ("train-start", "train-end", "test-start", "test-end"):
        ev.add_argument(f"--{name}", required=True, help="ISO date (UTC)")
    ev.add_argument("--folds", type=int, default=1, help="test slices, each refitted on its past")
    ev.add_argument("--threshold", type=float, default=0.65, help="confidence threshold")
    ev.add_argument(
        "--coverage",
        type=float,
        help="instead of --threshold: fit the threshold on validation to this share",
    )
    ev.add_argument("--fee", type=float, default=0.0005, help="taker fee a side (default 0.05%%)")
    ev.add_argument("--slippage-bps", type=float, default=0.0)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--max-epochs", type=int, help="cap training epochs (quick looks)")
    ev.add_argument(
        "--report-dir",
        default="evaluation-report",
        help="where report.md and equity.png go (default ./evaluation-report)",
    )
    ev.add_argument("--json", help="write the full report as JSON to this file ('-': stdout)")
    ev.set_defaults(func=cmd_evaluate)

    live = sub.add_parser(
        "live",
        help="replay live trading offline: the real sensor and live job, candle by candle, "
        "over the replay exchange, then compared with the backtest",
    )
    live.add_argument("--replay", action="store_true", help="replay (the only mode offline)")
    live.add_argument("--data-dir", help="candle folder (default SIGNALS_DATA_DIR)")
    live.add_argument("--start", default="2023-01-02", help="first candle to decide (ISO date)")
    live.add_argument("--candles", type=int, default=48, help="candles to replay (default 48)")
    live.add_argument("--model", type=int, help="model id (default: production, else newest)")
    live.add_argument(
        "--threshold",
        type=float,
        help="replay with this confidence threshold instead of the model's",
    )
    live.add_argument("--risk-fraction", type=float, default=0.5, help="of equity per position")
    live.add_argument("--fee", type=float, default=0.0005, help="taker fee a side (0.05%%)")
    live.add_argument("--balance", type=float, default=10_000.0, help="paper USDT per market")
    live.add_argument("--json", help="write the parity reports to this file")
    live.set_defaults(func=cmd_live)

    rec = sub.add_parser(
        "reconcile", help="compare the broker's positions and open orders with the book"
    )
    rec.add_argument(
        "--adopt", action="store_true", help="make the book hold what the broker holds"
    )
    rec.set_defaults(func=cmd_reconcile)

    kill = sub.add_parser("kill", help="the kill switch: flatten and stop trading")
    kill.add_argument("action", choices=("on", "off", "status"))
    kill.set_defaults(func=cmd_kill)

    db = sub.add_parser("db", help="the PostgreSQL store")
    db.add_argument("action", choices=("url", "migrate", "stop"))
    db.set_defaults(func=cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("signals: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; -v shows the traceback
        if args.verbose:
            logging.exception("failed")
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"signals: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
