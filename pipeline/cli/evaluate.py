"""`signals evaluate`: walk-forward evaluation of the whole chain on a candle folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.common import csv_list, json_default
from pipeline.data.timeframes import timeframe_ms
from pipeline.exchange.markets import normalise_symbol


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="walk-forward evaluation of the whole chain on a candle folder, beside baselines",
    )
    ev.add_argument("--data-dir", required=True, help="candle folder (MARKETID.csv[.gz], 1h)")
    ev.add_argument("--markets", type=csv_list, required=True, help="markets to fit on")
    ev.add_argument("--test-markets", type=csv_list, help="markets to test on (default: same)")
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
    text = json.dumps(report, indent=1, default=json_default)
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
