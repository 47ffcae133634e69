"""`signals ingest`: candles into PostgreSQL, incrementally, one partition at a time;
`signals ingest-funding`: the markets' funding-rate history, the same way."""

from __future__ import annotations

import argparse
import json
import sys
import time

from pipeline.cli.common import csv_list, progress
from pipeline.data.timeframes import ms_to_iso, parse_date_ms, timeframe_ms
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
    _register_funding(subparsers)


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


def _register_funding(subparsers: argparse._SubParsersAction) -> None:
    funding = subparsers.add_parser(
        "ingest-funding",
        help="ingest funding-rate history into PostgreSQL, incrementally",
        description="Fetch each market's funding settlements through ccxt "
        "(fetchFundingRateHistory) and store them in the funding_rates table. A market with "
        "stored rows resumes after its newest one; running twice adds nothing. The backtest "
        "uses these rates at each settlement, and 0.01 % per 8h where none are stored.",
    )
    funding.add_argument(
        "--markets",
        type=csv_list,
        required=True,
        help="unified symbols or exchange ids, e.g. BTC/USDT:USDT,ETHUSDT",
    )
    funding.add_argument(
        "--start",
        help=f"first settlement when nothing is stored (default SIGNALS_SINCE or {DEFAULT_SINCE})",
    )
    funding.add_argument("--end", help="last settlement (ISO date or datetime; default now)")
    funding.add_argument(
        "--exchange", help=f"ccxt exchange id: {DEFAULT_EXCHANGE} (default) or {BYBIT}"
    )
    funding.add_argument("--api-url", help="point ccxt at another host (replay exchange, testnet)")
    funding.add_argument(
        "--page-limit", type=int, help="rows per request (default: the exchange's most)"
    )
    funding.add_argument("--retries", type=int, default=5, help="attempts per request (default 5)")
    funding.add_argument(
        "--timeout-ms", type=int, default=10_000, help="per request (default 10000)"
    )
    funding.add_argument("--json", action="store_true", help="print a JSON summary")
    funding.set_defaults(func=cmd_ingest_funding)


def cmd_ingest_funding(args: argparse.Namespace) -> int:
    from pipeline.data.funding import ingest_funding, open_funding_source
    from pipeline.exchange.retry import RetryPolicy
    from pipeline.store.database import open_database
    from pipeline.store.funding import funding_summary

    settings = Settings.from_env()
    symbols = [normalise_symbol(m) for m in args.markets]
    start_ms = parse_date_ms(args.start or settings.since)
    end_ms = parse_date_ms(args.end) if args.end else int(time.time() * 1000)
    if end_ms < start_ms:
        raise ValueError(f"--end ({ms_to_iso(end_ms)}) is before --start ({ms_to_iso(start_ms)})")
    source = open_funding_source(
        args.exchange or settings.exchange,
        args.api_url or settings.api_url,
        RetryPolicy(attempts=args.retries),
        args.timeout_ms,
        args.page_limit,
    )
    for symbol in symbols:
        source.check_market(symbol)  # every market known before any is written
    db = open_database(settings)
    results = []
    for symbol in symbols:
        added = ingest_funding(db, source, symbol, start_ms, end_ms)
        with db.connection() as conn:
            stored = funding_summary(conn, source.exchange_id, symbol)
        results.append(
            {
                "market": symbol,
                "rows_added": added,
                "rows_total": stored.rows,
                "first": ms_to_iso(stored.first_ms),
                "last": ms_to_iso(stored.last_ms),
            }
        )
    if args.json:
        print(json.dumps({"exchange": source.exchange_id, "markets": results}))
    else:
        for r in results:
            print(
                f"{r['market']:<16} funding  +{r['rows_added']:<6} total {r['rows_total']:<6} "
                f"{r['first']} → {r['last']}"
            )
    return 0
