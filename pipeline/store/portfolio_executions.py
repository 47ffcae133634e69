"""The portfolio manager's record of each decision candle: planned (its orders decided, before
any is sent), then done (with what happened). See migration 0007 for why it exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.store.models import jsonb

PLANNED, DONE = "planned", "done"


@dataclass(frozen=True)
class PortfolioCandle:
    candle_ms: int
    status: str  # PLANNED or DONE
    action: str | None
    plan: dict[str, Any] | None
    result: dict[str, Any] | None


_COLUMNS = """(extract(epoch FROM candle_time) * 1000)::bigint, status, action, plan, result"""


def _row(row: tuple | None) -> PortfolioCandle | None:
    return None if row is None else PortfolioCandle(int(row[0]), row[1], row[2], row[3], row[4])


def newest(conn: psycopg.Connection, account: str) -> PortfolioCandle | None:
    """The account's most recent decision candle on record, or None."""
    row = conn.execute(
        f"""SELECT {_COLUMNS} FROM portfolio_executions WHERE account = %s
            ORDER BY candle_time DESC LIMIT 1""",
        (account,),
    ).fetchone()
    conn.commit()
    return _row(row)


def plan(
    conn: psycopg.Connection, account: str, candle_ms: int, timeframe: str, orders: dict[str, Any]
) -> dict[str, Any]:
    """Record the candle's plan unless one is recorded already; return the recorded one (a
    run that lost the race to another executes the winner's plan, not its own)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO portfolio_executions (account, candle_time, timeframe, status, plan)
               VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s)
               ON CONFLICT (account, candle_time) DO NOTHING""",
            (account, candle_ms, timeframe, PLANNED, jsonb(orders)),
        )
        row = conn.execute(
            """SELECT plan FROM portfolio_executions
               WHERE account = %s AND candle_time = to_timestamp(%s / 1000.0)""",
            (account, candle_ms),
        ).fetchone()
    assert row is not None and row[0] is not None
    return row[0]


def finish(
    conn: psycopg.Connection,
    account: str,
    candle_ms: int,
    timeframe: str,
    action: str,
    result: dict[str, Any],
) -> None:
    """Mark the candle done with what the execution did (its plan, if any, is kept)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO portfolio_executions (account, candle_time, timeframe, status, action,
                                                 result)
               VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s, %s)
               ON CONFLICT (account, candle_time) DO UPDATE SET
                   status = EXCLUDED.status, action = EXCLUDED.action,
                   result = EXCLUDED.result, updated_at = clock_timestamp()""",
            (account, candle_ms, timeframe, DONE, action, jsonb(result)),
        )
