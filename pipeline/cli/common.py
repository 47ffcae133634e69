"""What every `signals` command shares: the one-line error, list arguments, progress, JSON."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


class CliError(Exception):
    """A failure to report in one line, exit status 1."""


LOST_DATABASE = (
    "the database went away mid-command; what was half-written was rolled back: run the "
    "command again (it restarts a crashed embedded server)"
)


def lost_database(err: BaseException) -> bool:
    """Whether the failure is PostgreSQL gone (killed, restarted, unreachable)."""
    import psycopg

    from pipeline.store.database import DatabaseUnavailable

    return isinstance(err, psycopg.OperationalError | DatabaseUnavailable)


def csv_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def progress(total: int, enabled: bool, unit: str = "partition"):
    """A bar on stderr, left out when stderr is not a terminal (or `enabled` is false)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, leave=False)


def json_default(value: object) -> object:
    """numpy scalars, dates and anything else JSON cannot hold, as plain values."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: a failure is one line on stderr (exit 1), -v adds the traceback."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("signals: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; -v shows the traceback
        if args.verbose:
            logging.exception("failed")
        message = " ".join(str(err).split()) or type(err).__name__
        if lost_database(err):
            message += f" ({LOST_DATABASE})"
        print(f"signals: error: {message}", file=sys.stderr)
        return 1
