"""The `signals` command: ingest candles, serve the replay exchange, run the main job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from pipeline.data.markets import normalise_symbol
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.settings import DEFAULT_SINCE, Settings


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
    from pipeline.data.ccxt_source import RetryPolicy
    from pipeline.data.ingest import ingest_partition
    from pipeline.data.sources import open_source
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
    from pipeline.data.replay_exchange import FaultPlan, ReplayClock, ReplayExchange, ReplayServer

    clock = ReplayClock(parse_date_ms(args.clock) if args.clock else None, args.speed)
    exchange = ReplayExchange(args.data_dir, clock)
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
    """Materialise `ohlcv` for every configured partition, through Dagster, as the UI would."""
    import dagster as dg

    from pipeline.data.replay_exchange import ReplayClock, ReplayExchange, ReplayServer

    settings = Settings.from_env()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():  # local storage under DAGSTER_HOME; no telemetry banner
        instance_yaml.write_text("telemetry:\n  enabled: false\n")

    from pipeline.definitions import build_resources
    from pipeline.partitions import ohlcv_partitions

    with ExitStack() as stack:
        if settings.data_dir and settings.source == "ccxt" and not settings.api_url:
            server = ReplayServer(ReplayExchange(settings.data_dir, ReplayClock())).start()
            stack.callback(server.stop)
            settings = Settings(**{**settings.__dict__, "api_url": server.url})
            print(f"replaying {settings.data_dir} through ccxt at {server.url}", file=sys.stderr)
        resources = build_resources(settings)
        from assets.market_data import ohlcv

        keys = ohlcv_partitions.get_partition_keys()
        instance = stack.enter_context(dg.DagsterInstance.get())
        failures = []
        with _progress(len(keys), sys.stderr.isatty()) as bar:
            for key in keys:
                bar.set_description(str(key))
                result = dg.materialize(
                    [ohlcv],
                    partition_key=key,
                    resources=resources,
                    instance=instance,
                    raise_on_error=False,
                    run_config=_QUIET_RUN,
                )
                if not result.success:
                    failures.append(key)
                _print_materialization(result, key)
                bar.update(1)
    if failures:
        raise CliError(f"{len(failures)} of {len(keys)} partitions failed: {failures}")
    print(f"materialised ohlcv for {len(keys)} partitions; runs recorded in {dagster_home}")
    return 0


# Dagster's console logger prints every event; the summary line per partition says enough.
_QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _print_materialization(result, key) -> None:
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    verdict = " ".join(
        f"{name.removeprefix('ohlcv_')}={'ok' if ok else 'NO'}" for name, ok in checks.items()
    )
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        value = {k: getattr(v, "value", v) for k, v in meta.items()}
        print(
            f"{value['market']:<16} {value['timeframe']:>4}  +{value['rows_added']:<7} "
            f"total {value['rows_total']:<7} {value['first_candle']} → {value['last_candle']}  "
            f"gaps {value['gaps']}  checks: {verdict}"
        )
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_failure_data:
                print(f"{key}: {event.step_failure_data.error.message.strip()}", file=sys.stderr)


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
    ingest.add_argument("--exchange", help="ccxt exchange id: binanceusdm (default) or bybit")
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
        help="fail requests: 429|500|timeout followed by :N (the next "
        "N requests) or :0.2 (a share of them), e.g. 500:3",
    )
    replay.add_argument(
        "--fault-delay",
        type=float,
        default=15.0,
        help="seconds a 'timeout' fault hangs (default 15)",
    )
    replay.add_argument("--seed", type=int, default=0, help="seed for share-based faults")
    replay.set_defaults(func=cmd_replay_exchange)

    run = sub.add_parser(
        "run",
        help="the main job: materialise ohlcv for the configured "
        "markets × timeframes through Dagster",
    )
    run.set_defaults(func=cmd_run)

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
