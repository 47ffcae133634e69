"""`signals ingest`: candles into PostgreSQL, incrementally, one partition at a time."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli.common import csv_list, progress
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.exchange.ids import BYBIT, DEFAULT_EXCHANGE
from pipeline.exchange.markets import normalise_symbol
from pipeline.settings import DEFAULT_SINCE, Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser("ingest", help="ingest candles into PostgreSQL, incrementally")
    ingest.add_argument("--source", choices=("ccxt", "csv"), required=True)
    ingest.add_argument(
        "--exchange", help=f"ccxt exchange id: {DEFAULT_EXCHANGE} (default) or {BYBIT}"
    )
    ingest.add_argument("--api-url", help="point ccxt at another host (replay exchange, testnet)")
    ingest.add_argument("--data-dir", help="candle folder for --source csv")
    ingest.add_argument(
        "--markets",
        type=csv_list,
        required=True,
        help="unified symbols, e.g. BTC/USDT:USDT,ETH/USDT:USDT",
    )
    ingest.add_argument("--timeframes", type=csv_list, required=True, help="e.g. 1h,4h,1d")
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
    with progress(len(partitions), show) as bar:
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
