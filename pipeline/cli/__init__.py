"""The `signals` command: each command's module adds its own subparser; this one dispatches."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from pipeline.cli import (
    db,
    evaluate,
    features,
    ingest,
    live,
    replay_exchange,
    run,
    trading,
    tune,
    worker,
)
from pipeline.cli.common import run_command

# In `signals --help` order.
COMMANDS = (ingest, replay_exchange, run, worker, features, evaluate, tune, live, trading, db)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signals",
        description="futures-signals: candles in, confident signals out. Settings come from "
        "SIGNALS_* environment variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and progress")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # its reconnect attempts after a crash would bury the one-line error
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    return run_command(args.func, args)
