"""`signals live --replay`: live trading replayed offline, then its parity table."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from pipeline.cli.common import CliError, json_default, progress
from pipeline.settings import Settings
from pipeline.tables import markdown_table

PARITY_HEADER = (
    "market",
    "decisions",
    "same as backtest",
    "max |Δp|",
    "round trips",
    "live return",
    "backtest return",
    "max |Δ trade|",
    "exits (kind, price) differ",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    live = subparsers.add_parser(
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
    live.add_argument(
        "--balance",
        type=float,
        help="paper USDT per market (barrier strategy, default 10000) or of the portfolio's one "
        "account (default 100000)",
    )
    live.add_argument(
        "--broker",
        choices=("paper", "ccxt"),
        default="paper",
        help="paper: a paper account per market (exact parity); ccxt: the replay exchange's own "
        "account through ccxt, resting exits at the exchange (parity to the tick and lot)",
    )
    live.add_argument("--json", help="write the parity reports to this file")
    live.set_defaults(func=cmd_live)


def cmd_live(args: argparse.Namespace) -> int:
    """Live trading replayed: the real sensor and job over the replay exchange, then parity."""
    if not args.replay:
        raise CliError(
            "live trading runs in Dagster: `make ui` and turn on new_candle_sensor (README); "
            "`signals live --replay` replays it offline"
        )
    settings = Settings.from_env()
    if settings.strategy == "portfolio":
        return _replay_portfolio(args, settings)
    from pipeline.trading_replay import replay_live

    outcome = replay_live(
        Settings.from_env(),
        args.data_dir,
        args.start,
        args.candles,
        model_id=args.model,
        threshold=args.threshold,
        risk_fraction=args.risk_fraction,
        fee=args.fee,
        balance=args.balance or 10_000.0,
        broker=args.broker,
        log=lambda message: print(message, file=sys.stderr),
        progress=lambda total: progress(total, sys.stderr.isatty(), unit="candle"),
    )
    failures, reports = outcome.failures, outcome.reports
    print(
        f"{outcome.candles} candles × {len(outcome.symbols)} markets, {len(failures)} failed run(s)"
    )
    rows = [
        (
            symbol,
            f"{r.compared}/{r.live_decisions}",
            "yes" if r.identical_decisions else "NO",
            f"{r.probability_max_abs_diff:.1e}",
            r.trades_compared,
            f"{r.live_return:+.4%}",
            f"{r.backtest_return:+.4%}",
            f"{r.trade_max_abs_diff:.1e}",
            len(r.exit_mismatches),
        )
        for symbol, r in reports.items()
    ]
    print(markdown_table(PARITY_HEADER, rows))
    kinds = Counter(t["exit_kind"] for r in reports.values() for t in r.live_trades)
    print("live exits: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"))
    if args.json:
        payload = {s: r.to_json() for s, r in reports.items()}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=json_default))
    bad = outcome.broken
    if failures or bad:
        raise CliError(
            f"parity broken: {len(failures)} failed run(s); decisions or trades differ for "
            f"{', '.join(bad) or 'no market'}"
        )
    return 0


def _replay_portfolio(args: argparse.Namespace, settings: Settings) -> int:
    """A portfolio model replayed: one run per decision candle, every market, one account."""
    from pipeline.trading_replay import replay_portfolio

    outcome = replay_portfolio(
        settings,
        args.data_dir,
        args.start,
        args.candles,
        model_id=args.model,
        fee=args.fee,
        balance=args.balance or 100_000.0,
        log=lambda message: print(message, file=sys.stderr),
        progress=lambda total: progress(total, sys.stderr.isatty(), unit="candle"),
    )
    p = outcome.parity
    print(
        f"{outcome.candles} {settings.decision_timeframe} candles × {len(outcome.symbols)} "
        f"markets, model {outcome.model_id}, {len(outcome.failures)} failed run(s)"
    )
    print(
        markdown_table(
            ("what", "live", "backtest", "same"),
            [
                (
                    "decisions (scores, weights, orders)",
                    p.live_decisions,
                    p.compared,
                    "yes" if p.identical_decisions else f"NO ({len(p.decision_mismatches)})",
                ),
                (
                    "fills",
                    p.live_fills,
                    p.backtest_fills,
                    "yes" if p.same_fills else f"NO ({len(p.fill_mismatches)})",
                ),
                ("equity at the end", f"{p.live_equity:,.2f}", f"{p.backtest_equity:,.2f}", ""),
            ],
        )
    )
    print(
        f"largest differences: score {p.score_max_abs_diff:.1e}, fill price "
        f"{p.price_max_abs_diff:.1e}, fill quantity {p.quantity_max_rel_diff:.1e} of the "
        "backtest's (live rounds each order down to the exchange's amount step); the backtest "
        "charges the paper account's fee and, like it, no funding"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(p.to_json(), indent=2, default=json_default))
    if outcome.failures or not (p.identical_decisions and p.same_fills):
        raise CliError(
            f"parity broken: {len(outcome.failures)} failed run(s); decisions "
            f"{'agree' if p.identical_decisions else 'differ'}, fills "
            f"{'agree' if p.same_fills else 'differ'}"
        )
    return 0
