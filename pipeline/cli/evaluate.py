"""`signals evaluate`: walk-forward evaluation of the whole chain on a candle folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli import evaluate_portfolio
from pipeline.cli.common import CliError, csv_list, json_default
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
    ev.add_argument(
        "--timeframe",
        default="1h",
        help="the decision timeframe (1h, 4h, 1d); with --portfolio several, comma-separated: "
        "each is evaluated and the default is chosen across them on validation",
    )
    for name in ("train-start", "train-end", "test-start", "test-end"):
        ev.add_argument(f"--{name}", required=True, help="ISO date (UTC)")
    ev.add_argument("--folds", type=int, default=1, help="test slices, each refitted on its past")
    ev.add_argument(
        "--threshold",
        type=float,
        help="a fixed confidence threshold (e.g. the brief's 0.65) instead of an operating "
        "point chosen on validation",
    )
    ev.add_argument(
        "--coverage",
        type=float,
        help="fit the threshold on validation to this one share instead of choosing among "
        "5–35 %% (no expected-value filter)",
    )
    ev.add_argument(
        "--label",
        metavar="T,K,MARGIN",
        help="fix the label rule (time limit in candles, barrier width in σ√T, margin; K "
        "'none' for time exits only) instead of choosing it on the first fold's training window",
    )
    ev.add_argument("--fee", type=float, default=0.0005, help="taker fee a side (default 0.05%%)")
    ev.add_argument(
        "--maker",
        action="store_true",
        help="enter with limits at the next open (maker fee 0.02%%, filled only when that "
        "candle trades through the limit)",
    )
    ev.add_argument("--slippage-bps", type=float, default=0.0, help="per taker fill")
    ev.add_argument(
        "--funding-rate",
        type=float,
        default=0.0001,
        help="per 8h settlement, charged where no funding history is given (default 0.01%%)",
    )
    ev.add_argument(
        "--random-draws", type=int, default=1000, help="random-entry strategies to rank against"
    )
    ev.add_argument(
        "--seeds",
        type=csv_list,
        default=[],
        help="more LSTM seeds (e.g. 1,2), refitted in every fold beside --seed: the per-seed "
        "spread of the headline figures",
    )
    ev.add_argument(
        "--tune-trials",
        type=int,
        default=0,
        help="tune the LSTM in every refit: an Optuna study of this many trials on the refit's "
        "training window (0, the default: no tuning); adds lstm_tuned and lstm_ensemble",
    )
    ev.add_argument("--tune-workers", type=int, default=1, help="worker processes per study")
    ev.add_argument(
        "--ensemble",
        type=int,
        default=3,
        help="seeds in the tuned ensemble (default 3: the size validation preferred)",
    )
    ev.add_argument(
        "--study-prefix",
        default="wf",
        help="studies are named PREFIX-<window end>-<hash of the search and its candles>; the "
        "same prefix resumes finished studies instead of searching again (default wf)",
    )
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--max-epochs", type=int, help="cap training epochs (quick looks)")
    ev.add_argument(
        "--report-dir",
        default="evaluation-report",
        help="where report.md and equity.png go (default ./evaluation-report)",
    )
    ev.add_argument("--json", help="write the full report as JSON to this file ('-': stdout)")
    evaluate_portfolio.add_arguments(ev)
    ev.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Walk-forward evaluation of the whole chain on a candle folder."""
    if args.portfolio:
        return evaluate_portfolio.cmd_evaluate_portfolio(args)
    from dataclasses import replace

    from pipeline.backtest.config import BacktestConfig
    from pipeline.backtest.report import write_report
    from pipeline.data.csv_source import CandleFolder
    from pipeline.evaluation.operating_choice import OperatingChoice
    from pipeline.evaluation.summary import (
        claims_table,
        ensemble_line,
        random_line,
        seed_line,
        summary_table,
        trials_line,
        tuned_lines,
    )
    from pipeline.evaluation.tuned import TuningConfig
    from pipeline.evaluation.walk_forward import EvaluationConfig, evaluate
    from pipeline.model.config import TrainConfig
    from pipeline.settings import Settings
    from pipeline.store.database import open_database

    timeframe_ms(args.timeframe)
    markets = tuple(normalise_symbol(m) for m in args.markets)
    test_markets = tuple(normalise_symbol(m) for m in args.test_markets or ())
    folder = CandleFolder(args.data_dir)
    candles = {s: folder.read(s, args.timeframe) for s in dict.fromkeys(markets + test_markets)}
    train = TrainConfig(seed=args.seed)
    if args.max_epochs:
        train = replace(train, max_epochs=args.max_epochs)
    if args.threshold is not None and args.coverage is not None:
        raise CliError("give --threshold or --coverage, not both")
    operating = OperatingChoice()
    if args.threshold is not None:
        operating = OperatingChoice(fixed_threshold=args.threshold)
    elif args.coverage is not None:
        operating = OperatingChoice(coverages=(args.coverage,), expected_value=(False,))
    costs = BacktestConfig(
        fee=args.fee,
        maker=args.maker,
        slippage_bps=args.slippage_bps,
        funding_rate=args.funding_rate,
    )
    cfg = EvaluationConfig(
        markets=markets,
        test_markets=test_markets,
        timeframe=args.timeframe,
        train_start=args.train_start,
        train_end=args.train_end,
        test_start=args.test_start,
        test_end=args.test_end,
        folds=args.folds,
        label=_label_rule(args.label, costs.round_trip) if args.label else None,
        operating=operating,
        random_draws=args.random_draws,
        seeds=tuple(int(x) for x in args.seeds),
        tuning=TuningConfig(
            budget=args.tune_trials,
            workers=args.tune_workers,
            ensemble=args.ensemble,
            study_prefix=args.study_prefix,
        )
        if args.tune_trials
        else None,
        train=train,
        backtest=costs,
    )
    quiet = args.json == "-"
    db = open_database(Settings.from_env())  # every look is recorded in the trials ledger
    report = evaluate(
        candles, cfg, log=lambda m: print(m, file=sys.stderr) if not quiet else None, ledger=db
    )
    backtests = report.pop("_backtests")
    out_dir = Path(args.report_dir)
    exits = "; ".join(
        f"from {e['from'][:10]} T = {e['horizon']}, k = {e['barrier_k']}"
        for e in report.get("tuned_exits", ())
    )
    written = write_report(
        backtests,
        out_dir,
        f"Walk-forward test {args.test_start} … "
        f"{args.test_end}, {len(cfg.evaluated_markets)} markets",
        notes=(f"lstm_tuned and lstm_ensemble exit by their refit's label rule: {exits}.",)
        if exits
        else (),
    )
    report["report"] = {"png": str(written.png_path), "markdown": str(written.markdown_path)}
    text = json.dumps(report, indent=1, default=json_default)
    if args.json == "-":
        print(text)
        return 0
    if args.json:
        Path(args.json).write_text(text)
    print(f"label rule (exits): {report['label_rule']}")
    print(summary_table(report))
    print()
    print(random_line(report))
    print(trials_line(report))
    print(seed_line(report))
    if "tuned_seed_spread" in report:
        print(seed_line(report, "tuned_seed_spread", "tuned LSTM"))
        print()
        print(tuned_lines(report))
        print(ensemble_line(report))
    print()
    print(claims_table(report))
    print(
        f"\nreport: {written.markdown_path} (equity curves: {written.png_path})"
        + (f"; JSON: {args.json}" if args.json else "")
    )
    return 0


def _label_rule(text: str, cost: float):
    """`T,K,MARGIN` → a LabelRule (K 'none': time exits only)."""
    from pipeline.features.labels import LabelRule

    try:
        horizon, k, margin = text.split(",")
        return LabelRule(
            horizon=int(horizon),
            barrier_k=None if k.strip().lower() == "none" else float(k),
            margin=float(margin),
            cost=cost,
        )
    except ValueError as err:
        raise CliError(f"--label {text!r}: expected T,K,MARGIN such as 12,1.5,0 ({err})") from err
