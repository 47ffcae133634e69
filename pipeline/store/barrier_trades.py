"""The live barrier trade of each account and market: side, time limit and exit levels.

The position manager writes a row when it enters or re-arms a barrier trade and removes it
when the trade closes; the resting exit orders themselves are rows of `orders` (purpose
'stop' / 'take_profit'), so reconciliation sees them like any other open order.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class BarrierTrade:
    symbol: str
    side: int  # +1 long, -1 short
    armed_candle_ms: int  # the decision candle that set (or re-armed) the levels
    hold_until_ms: int  # open time of the last candle the trade may be held
    stop_price: float
    take_price: float


def current(conn: psycopg.Connection, account: str, symbol: str) -> BarrierTrade | None:
    row = conn.execute(
        """SELECT symbol, side, armed_candle_ms, hold_until_ms, stop_price, take_price
           FROM barrier_trades WHERE account = %s AND symbol = %s""",
        (account, symbol),
    ).fetchone()
    conn.commit()
    if row is None:
        return None
    return BarrierTrade(row[0], int(row[1]), int(row[2]), int(row[3]), row[4], row[5])


def arm(conn: psycopg.Connection, account: str, trade: BarrierTrade) -> None:
    """Record the trade's levels and time limit (an entry, or a re-arm of the same side)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO barrier_trades (account, symbol, side, armed_candle_ms, hold_until_ms,
                                           stop_price, take_price)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (account, symbol) DO UPDATE SET
                   side = EXCLUDED.side, armed_candle_ms = EXCLUDED.armed_candle_ms,
                   hold_until_ms = EXCLUDED.hold_until_ms, stop_price = EXCLUDED.stop_price,
                   take_price = EXCLUDED.take_price, updated_at = clock_timestamp()""",
            (
                account,
                trade.symbol,
                trade.side,
                trade.armed_candle_ms,
                trade.hold_until_ms,
                trade.stop_price,
                trade.take_price,
            ),
        )


def close(conn: psycopg.Connection, account: str, symbol: str) -> None:
    with conn.transaction():
        conn.execute(
            "DELETE FROM barrier_trades WHERE account = %s AND symbol = %s", (account, symbol)
        )
