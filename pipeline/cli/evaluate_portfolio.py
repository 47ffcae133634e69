"""`signals evaluate --portfolio`: the portfolio walk-forward at one or more decision timeframes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.cli.common import CliError, csv_list, json_default


def add_arguments(ev: argparse.ArgumentParser) -> None:
    group = ev.add_argument_group(
        "portfolio (with --portfolio: every market's score → target weights → one shared equity)"
    )
    group.add_argument(
        "--portfolio",
        action="store_true",
        help="evaluate portfolios of target positions instead of per-market barrier trades",
    )
    group.add_argument(
        "--funding-dir",
        help="folder of MARKETID_funding.csv[.gz] (recorded 8-hourly funding); markets without "
        "a file are charged --funding-rate, and the report says how many settlements it filled "
        "(default: $SIGNALS_FUNDING_DIR, else the candle folder's own funding files)",
    )
    group.add_argument(
        "--horizon-days",
        type=float,
        default=5.0,
        help="the target's holding horizon H in days (default 5)",
    )
    group.add_argument(
        "--cross-sectional",
        action="store_true",
        help="the target ranks each time's risk-adjusted returns across markets",
    )
    group.add_argument(
        "--target-vol",
        type=float,
        default=0.40,
        help="annual volatility of a market's sleeve at full conviction (default 0.40)",
    )
    group.add_argument(
        "--band", type=float, default=0.05, help="no-trade band, fraction of equity (0.05)"
    )
    group.add_argument(
        "--min-hold", type=int, default=0, help="decision candles between two orders of a market"
    )
    group.add_argument(
        "--coverages",
        type=csv_list,
        default=["1.0", "0.5", "0.35", "0.2"],
        help="the operating points validation chooses among: shares of scores held",
    )


def cmd_evaluate_portfolio(args: argparse.Namespace) -> int:
    """Walk-forward evaluation of portfolios; with several timeframes, the default is chosen
    across them by the same validation rule."""
    from dataclasses import replace

    from pipeline.backtest.portfolio import PortfolioCosts
    from pipeline.data.csv_source import CandleFolder
    from pipeline.data.funding_rows import read_funding_folder
    from pipeline.data.timeframes import timeframe_ms
    from pipeline.evaluation.default_choice import choose_default
    from pipeline.evaluation.portfolio_choice import PortfolioChoice
    from pipeline.evaluation.portfolio_walk_forward import (
        DEFAULT_CANDIDATES,
        SCORER_PORTFOLIO,
        PortfolioEvaluationConfig,
        evaluate_portfolio,
    )
    from pipeline.exchange.markets import market_id, normalise_symbol
    from pipeline.model.config import TrainConfig
    from pipeline.settings import Settings
    from pipeline.store.database import open_database

    timeframes = [t.strip() for t in args.timeframe.split(",") if t.strip()]
    for tf in timeframes:
        timeframe_ms(tf)
    if args.test_markets:
        raise CliError("--test-markets: a portfolio is fitted and tested on the same markets")
    markets = tuple(normalise_symbol(m) for m in args.markets)
    folder = CandleFolder(args.data_dir)
    hourly = {s: folder.read(s, "1h") for s in markets}
    settings = Settings.from_env()
    funding_dir = args.funding_dir or settings.funding_dir or folder.path
    histories = read_funding_folder(funding_dir, [market_id(s) for s in markets])
    funding = {s: histories[market_id(s)] for s in markets if market_id(s) in histories}
    train = TrainConfig(seed=args.seed)
    if args.max_epochs:
        train = replace(train, max_epochs=args.max_epochs)
    portfolio = replace(
        SCORER_PORTFOLIO, target_vol=args.target_vol, band=args.band, min_hold=args.min_hold
    )
    costs = PortfolioCosts(
        fee=args.fee, slippage_bps=args.slippage_bps, funding_rate=args.funding_rate
    )
    quiet = args.json == "-"
    db = open_database(settings)  # every look is recorded in the trials ledger
    reports: dict[str, dict[str, Any]] = {}
    for tf in timeframes:
        cfg = PortfolioEvaluationConfig(
            markets=markets,
            train_start=args.train_start,
            train_end=args.train_end,
            test_start=args.test_start,
            test_end=args.test_end,
            timeframe=tf,
            folds=args.folds,
            horizon_days=args.horizon_days,
            cross_sectional=args.cross_sectional,
            seeds=tuple(int(x) for x in args.seeds),
            train=train,
            costs=costs,
            portfolio=portfolio,
            choice=PortfolioChoice(coverages=tuple(float(c) for c in args.coverages)),
            random_draws=args.random_draws,
        )
        reports[tf] = evaluate_portfolio(
            hourly,
            cfg,
            funding=funding,
            log=(lambda m, tf=tf: print(f"[{tf}] {m}", file=sys.stderr)) if not quiet else print,
            ledger=db,
        )
    judged = {
        f"{name}@{tf}": folds
        for tf, report in reports.items()
        for name, folds in report["validation_judged"].items()
        if name in DEFAULT_CANDIDATES
    }
    winner, rule = choose_default(judged)
    strategy, timeframe = winner.split("@")
    combined = {
        "default_strategy": strategy,  # a key of `pooled`: the default timeframe's figures
        "default_timeframe": timeframe,
        "default_rule": rule,
        "pooled": reports[timeframe]["pooled"],
        "timeframes": reports,
    }
    _print_and_write(combined, args, quiet)
    return 0


def _print_and_write(combined: dict[str, Any], args: argparse.Namespace, quiet: bool) -> None:
    from pipeline.backtest.portfolio_report import write_portfolio_report
    from pipeline.evaluation.portfolio_summary import (
        default_line,
        funding_line,
        random_line,
        seed_line,
        trials_line,
        verdict_table,
    )

    out_dir = Path(args.report_dir)
    for tf, report in combined["timeframes"].items():
        results = report.pop("_results")
        written = write_portfolio_report(
            results,
            out_dir / tf,
            f"Portfolio walk-forward {args.test_start} … {args.test_end}, {tf} decisions, "
            f"{len(report['config']['markets'])} markets",
        )
        report["report"] = {"png": str(written.png_path), "markdown": str(written.markdown_path)}
    # Each timeframe's JSON names the default among its own strategies; the combined one
    # names the default across timeframes.
    text = json.dumps(combined, indent=1, default=json_default)
    if args.json == "-":
        print(text)
        return
    if args.json:
        Path(args.json).write_text(text)
    for tf, report in combined["timeframes"].items():
        print(
            f"\n## {tf} decisions: target {report['target']['kind']} over "
            f"{report['config']['horizon_candles']} candles"
        )
        print(verdict_table(report))
        print()
        for line in (random_line, seed_line, trials_line, funding_line, default_line):
            print(line(report))
        print(f"report: {report['report']['markdown']}")
    print(
        f"\nShipped default: {combined['default_strategy']} at {combined['default_timeframe']} "
        f"({combined['default_rule']['rule']})" + (f"; JSON: {args.json}" if args.json else "")
    )
