"""The trading record: orders and their fills, the position book, equity marks, the
account's trading state and reconciliation reports.

An order row is written BEFORE the order is sent (status 'sent'), so a crash between sending
and hearing back leaves a trace; the answer, the fill and the book move in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.store.models import jsonb


@dataclass(frozen=True)
class BookPosition:
    symbol: str
    quantity: float  # signed
    entry_price: float | None
    last_candle_ms: int | None


@dataclass(frozen=True)
class StoredOrder:
    id: int
    client_order_id: str
    symbol: str
    status: str
    filled: float
    average_price: float | None
    fee: float
    reason: str | None


@dataclass(frozen=True)
class TradingState:
    halted: bool
    halted_reason: str | None
    halted_until_ms: int | None
    day: dt.date | None
    day_start_equity: float | None


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def book(conn: psycopg.Connection, account: str) -> dict[str, BookPosition]:
    rows = conn.execute(
        "SELECT symbol, quantity, entry_price, last_candle FROM positions WHERE account = %s",
        (account,),
    ).fetchall()
    conn.commit()
    return {r[0]: BookPosition(r[0], float(r[1]), r[2], _ms(r[3])) for r in rows}


def book_position(conn: psycopg.Connection, account: str, symbol: str) -> BookPosition:
    return book(conn, account).get(symbol, BookPosition(symbol, 0.0, None, None))


def open_order_row(
    conn: psycopg.Connection,
    *,
    account: str,
    client_order_id: str,
    symbol: str,
    side: str,
    quantity: float,
    reduce_only: bool,
    purpose: str,
    signal_id: int | None,
) -> StoredOrder:
    """Record an order about to be sent; if this client order id exists, return that row."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO orders (account, client_order_id, symbol, side, quantity, reduce_only,
                                   purpose, signal_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (account, client_order_id) DO NOTHING""",
            (account, client_order_id, symbol, side, quantity, reduce_only, purpose, signal_id),
        )
        row = conn.execute(
            """SELECT id, client_order_id, symbol, status, filled, average_price, fee, reason
               FROM orders WHERE account = %s AND client_order_id = %s""",
            (account, client_order_id),
        ).fetchone()
    assert row is not None
    return StoredOrder(
        int(row[0]), row[1], row[2], row[3], float(row[4]), row[5], float(row[6]), row[7]
    )


def settle_order(
    conn: psycopg.Connection,
    *,
    account: str,
    order_id: int,
    symbol: str,
    side: str,
    status: str,
    exchange_order_id: str | None,
    filled: float,
    average_price: float | None,
    fee: float,
    reason: str | None,
    at_ms: int,
    candle_ms: int | None,
) -> BookPosition:
    """Record the broker's answer; on a fill, write the fill and move the book, atomically."""
    with conn.transaction():
        conn.execute(
            """UPDATE orders SET status = %s, exchange_order_id = %s, filled = %s,
                      average_price = %s, fee = %s, reason = %s,
                      acknowledged_at = clock_timestamp()
               WHERE id = %s""",
            (status, exchange_order_id, filled, average_price, fee, reason, order_id),
        )
        current = conn.execute(
            "SELECT quantity, entry_price FROM positions WHERE account = %s AND symbol = %s "
            "FOR UPDATE",
            (account, symbol),
        ).fetchone()
        quantity, entry = (float(current[0]), current[1]) if current else (0.0, None)
        if filled > 0 and average_price is not None:
            inserted = conn.execute(
                """INSERT INTO fills (order_id, account, symbol, side, quantity, price, fee,
                                      filled_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s / 1000.0))
                   ON CONFLICT (order_id) DO NOTHING RETURNING order_id""",
                (order_id, account, symbol, side, filled, average_price, fee, at_ms),
            ).fetchone()
            if inserted:  # a fill moves the book once, however often it is reported
                quantity, entry = moved(
                    quantity, entry, filled if side == "buy" else -filled, average_price
                )
        conn.execute(
            """INSERT INTO positions (account, symbol, quantity, entry_price, last_candle)
               VALUES (%s, %s, %s, %s, to_timestamp(%s / 1000.0))
               ON CONFLICT (account, symbol) DO UPDATE SET
                   quantity = EXCLUDED.quantity, entry_price = EXCLUDED.entry_price,
                   updated_at = clock_timestamp()""",
            (account, symbol, quantity, entry, candle_ms),
        )
    return BookPosition(symbol, quantity, entry, candle_ms)


def mark_order_unknown(conn: psycopg.Connection, order_id: int, reason: str) -> None:
    """The broker failed to answer: the order may or may not be on the exchange."""
    with conn.transaction():
        conn.execute(
            "UPDATE orders SET status = 'unknown', reason = %s WHERE id = %s",
            (reason, order_id),
        )


def moved(
    quantity: float, entry: float | None, change: float, price: float
) -> tuple[float, float | None]:
    """A position after a signed fill: the average entry grows with additions, stays on
    reductions, restarts at the fill price on a flip; flat has no entry."""
    after = quantity + change
    if abs(after) < 1e-12:
        return 0.0, None
    if quantity == 0 or (quantity > 0) != (after > 0):
        return after, price
    if abs(after) > abs(quantity):
        return after, ((entry or price) * abs(quantity) + price * abs(change)) / abs(after)
    return after, entry


def mark_candle(conn: psycopg.Connection, account: str, symbol: str, candle_ms: int) -> None:
    """Note that this candle's signal has been executed for the market (stale runs stop here)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO positions (account, symbol, quantity, last_candle)
               VALUES (%s, %s, 0, to_timestamp(%s / 1000.0))
               ON CONFLICT (account, symbol) DO UPDATE SET
                   last_candle = GREATEST(positions.last_candle, EXCLUDED.last_candle),
                   updated_at = clock_timestamp()""",
            (account, symbol, candle_ms),
        )


def set_book(
    conn: psycopg.Connection, account: str, symbol: str, quantity: float, entry: float | None
) -> None:
    """Overwrite the book with what the exchange holds (an operator's `--adopt`)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO positions (account, symbol, quantity, entry_price)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (account, symbol) DO UPDATE SET
                   quantity = EXCLUDED.quantity, entry_price = EXCLUDED.entry_price,
                   updated_at = clock_timestamp()""",
            (account, symbol, quantity, entry),
        )


def record_equity(
    conn: psycopg.Connection, account: str, at_ms: int, equity: float, note: str | None = None
) -> None:
    with conn.transaction():
        conn.execute(
            """INSERT INTO equity (account, at, equity, note)
               VALUES (%s, to_timestamp(%s / 1000.0), %s, %s)
               ON CONFLICT (account, at) DO UPDATE SET equity = EXCLUDED.equity,
                                                       note = EXCLUDED.note""",
            (account, at_ms, equity, note),
        )


def latest_equity(conn: psycopg.Connection, account: str) -> float | None:
    """The account's newest equity mark, if any."""
    row = conn.execute(
        "SELECT equity FROM equity WHERE account = %s ORDER BY at DESC LIMIT 1", (account,)
    ).fetchone()
    conn.commit()
    return float(row[0]) if row else None


def trading_state(conn: psycopg.Connection, account: str) -> TradingState:
    row = conn.execute(
        """SELECT halted, halted_reason, halted_until, day, day_start_equity
           FROM trading_state WHERE account = %s""",
        (account,),
    ).fetchone()
    conn.commit()
    if row is None:
        return TradingState(False, None, None, None, None)
    return TradingState(bool(row[0]), row[1], _ms(row[2]), row[3], row[4])


def save_trading_state(conn: psycopg.Connection, account: str, state: TradingState) -> None:
    with conn.transaction():
        conn.execute(
            """INSERT INTO trading_state (account, halted, halted_reason, halted_until, day,
                                          day_start_equity)
               VALUES (%s, %s, %s, to_timestamp(%s / 1000.0), %s, %s)
               ON CONFLICT (account) DO UPDATE SET
                   halted = EXCLUDED.halted, halted_reason = EXCLUDED.halted_reason,
                   halted_until = EXCLUDED.halted_until, day = EXCLUDED.day,
                   day_start_equity = EXCLUDED.day_start_equity,
                   updated_at = clock_timestamp()""",
            (
                account,
                state.halted,
                state.halted_reason,
                state.halted_until_ms,
                state.day,
                state.day_start_equity,
            ),
        )


def record_reconciliation(
    conn: psycopg.Connection, account: str, differences: list[dict[str, Any]]
) -> int:
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO reconciliations (account, ok, differences) VALUES (%s, %s, %s)
               RETURNING id""",
            (account, not differences, jsonb(differences)),
        ).fetchone()
    assert row is not None
    return int(row[0])


def orders_with_status(conn: psycopg.Connection, account: str, status: str) -> list[StoredOrder]:
    rows = conn.execute(
        """SELECT id, client_order_id, symbol, status, filled, average_price, fee, reason
           FROM orders WHERE account = %s AND status = %s ORDER BY id""",
        (account, status),
    ).fetchall()
    conn.commit()
    return [
        StoredOrder(int(r[0]), r[1], r[2], r[3], float(r[4]), r[5], float(r[6]), r[7]) for r in rows
    ]


@dataclass(frozen=True)
class UnansweredOrder:
    """An order row with no answer recorded: 'sent' (the process died between writing the row
    and hearing back) or 'unknown' (the broker failed past its retry bound)."""

    id: int
    client_order_id: str
    symbol: str
    side: str
    status: str


def unanswered_orders(
    conn: psycopg.Connection, account: str, symbols: list[str] | None = None
) -> list[UnansweredOrder]:
    """The account's orders still 'sent' or 'unknown', oldest first (of `symbols` if given)."""
    rows = conn.execute(
        """SELECT id, client_order_id, symbol, side, status FROM orders
           WHERE account = %s AND status IN ('sent', 'unknown')
             AND (%s::text[] IS NULL OR symbol = ANY(%s::text[]))
           ORDER BY id""",
        (account, symbols, symbols),
    ).fetchall()
    conn.commit()
    return [UnansweredOrder(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def resting_exits(
    conn: psycopg.Connection, account: str, symbols: list[str] | None = None
) -> list[UnansweredOrder]:
    """The account's resting exits still open at the broker by the book (stop and take-profit
    orders, status 'open'), oldest first: a run asks what became of each before trading."""
    rows = conn.execute(
        """SELECT id, client_order_id, symbol, side, status FROM orders
           WHERE account = %s AND status = 'open' AND purpose IN ('stop', 'take_profit')
             AND (%s::text[] IS NULL OR symbol = ANY(%s::text[]))
           ORDER BY id""",
        (account, symbols, symbols),
    ).fetchall()
    conn.commit()
    return [UnansweredOrder(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def fills(conn: psycopg.Connection, account: str, symbol: str) -> list[tuple]:
    """Every fill of one market, oldest first: (side, quantity, price, fee, filled_at_ms,
    purpose), the purpose being the order's (open, close, stop, take_profit, …)."""
    rows = conn.execute(
        """SELECT f.side, f.quantity, f.price, f.fee,
                  (extract(epoch FROM f.filled_at) * 1000)::bigint AS filled_at_ms, o.purpose
           FROM fills f JOIN orders o ON o.id = f.order_id
           WHERE f.account = %s AND f.symbol = %s ORDER BY f.filled_at, f.order_id""",
        (account, symbol),
    ).fetchall()
    conn.commit()
    return rows
