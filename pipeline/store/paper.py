"""The paper broker's own account: its wallet, its positions and every order it answered.

These tables stand for an exchange's ledger, kept apart from the position manager's book
(`store.trading`) so that reconciling a paper account compares two records. Each function
is one statement and none commits: the broker owns the transaction, because an order is
checked, filled and recorded under the wallet's row lock as one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class PaperOrder:
    """An order as the paper broker first answered it (a retry is answered from this)."""

    status: str
    quantity: float
    price: float | None
    fee: float
    reason: str | None
    at_ms: int


@dataclass(frozen=True)
class PaperPosition:
    """One market's position on the paper account, with its leverage setting."""

    quantity: float
    entry_price: float | None
    leverage: int


def open_account(conn: psycopg.Connection, account: str, balance: float) -> None:
    """Create the wallet with its starting balance; an existing wallet keeps its own."""
    conn.execute(
        "INSERT INTO paper_accounts (account, balance) VALUES (%s, %s) "
        "ON CONFLICT (account) DO NOTHING",
        (account, balance),
    )


def lock_account(conn: psycopg.Connection, account: str) -> None:
    """Take the wallet row's lock until the transaction ends: one order at a time."""
    conn.execute("SELECT 1 FROM paper_accounts WHERE account = %s FOR UPDATE", (account,))


def balance(conn: psycopg.Connection, account: str) -> float:
    """The wallet balance: deposits plus realised profit and loss, less fees."""
    row = conn.execute(
        "SELECT balance FROM paper_accounts WHERE account = %s", (account,)
    ).fetchone()
    assert row is not None
    return float(row[0])


def add_to_balance(conn: psycopg.Connection, account: str, amount: float) -> None:
    """Credit (or, negative, debit) the wallet: a fill's realised result less its fee."""
    conn.execute(
        "UPDATE paper_accounts SET balance = balance + %s WHERE account = %s",
        (amount, account),
    )


def open_positions(conn: psycopg.Connection, account: str) -> list[tuple[str, float, float]]:
    """(symbol, signed quantity, entry price) of every position that is not flat."""
    return conn.execute(
        "SELECT symbol, quantity, entry_price FROM paper_positions "
        "WHERE account = %s AND quantity <> 0",
        (account,),
    ).fetchall()


def other_positions(
    conn: psycopg.Connection, account: str, symbol: str
) -> list[tuple[str, float, int]]:
    """(symbol, signed quantity, leverage) of every open position but `symbol`'s."""
    return conn.execute(
        "SELECT symbol, quantity, leverage FROM paper_positions "
        "WHERE account = %s AND symbol <> %s AND quantity <> 0",
        (account, symbol),
    ).fetchall()


def position(conn: psycopg.Connection, account: str, symbol: str) -> PaperPosition | None:
    """The market's position row (flat ones included), or None if it was never touched."""
    row = conn.execute(
        """SELECT quantity, entry_price, leverage FROM paper_positions
           WHERE account = %s AND symbol = %s""",
        (account, symbol),
    ).fetchone()
    return PaperPosition(float(row[0]), row[1], int(row[2])) if row else None


def configure_market(
    conn: psycopg.Connection, account: str, symbol: str, leverage: int, margin_mode: str
) -> None:
    """Set a market's leverage and margin mode, keeping any position it holds."""
    conn.execute(
        """INSERT INTO paper_positions (account, symbol, leverage, margin_mode)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (account, symbol) DO UPDATE SET
               leverage = EXCLUDED.leverage, margin_mode = EXCLUDED.margin_mode""",
        (account, symbol, leverage, margin_mode),
    )


def set_position(
    conn: psycopg.Connection,
    account: str,
    symbol: str,
    quantity: float,
    entry_price: float | None,
) -> None:
    """Write a market's position after a fill, keeping its leverage and margin mode."""
    conn.execute(
        """INSERT INTO paper_positions (account, symbol, quantity, entry_price)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (account, symbol) DO UPDATE SET
               quantity = EXCLUDED.quantity, entry_price = EXCLUDED.entry_price""",
        (account, symbol, quantity, entry_price),
    )


def recorded_order(
    conn: psycopg.Connection, account: str, client_order_id: str
) -> PaperOrder | None:
    """The order answered before under this client order id, if any."""
    row = conn.execute(
        """SELECT status, quantity, price, fee, reason, at_ms FROM paper_orders
           WHERE account = %s AND client_order_id = %s""",
        (account, client_order_id),
    ).fetchone()
    if row is None:
        return None
    status, quantity, price, fee, reason, at_ms = row
    return PaperOrder(status, float(quantity), price, float(fee), reason, int(at_ms))


def record_order(
    conn: psycopg.Connection,
    *,
    account: str,
    client_order_id: str,
    symbol: str,
    side: str,
    quantity: float,
    status: str,
    price: float | None,
    fee: float,
    reason: str | None,
    at_ms: int,
) -> None:
    """Remember the answer to a client order id, so a retry gets the same answer."""
    conn.execute(
        """INSERT INTO paper_orders (account, client_order_id, symbol, side, quantity,
                                     status, price, fee, reason, at_ms)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (account, client_order_id, symbol, side, quantity, status, price, fee, reason, at_ms),
    )


@dataclass(frozen=True)
class RestingOrder:
    """A paper stop or take-profit waiting for a candle to touch its trigger price."""

    client_order_id: str
    symbol: str
    side: str
    quantity: float
    kind: str
    trigger_price: float
    watched_from_ms: int


def record_resting(
    conn: psycopg.Connection,
    *,
    account: str,
    client_order_id: str,
    symbol: str,
    side: str,
    quantity: float,
    kind: str,
    trigger_price: float,
    watched_from_ms: int,
    at_ms: int,
) -> None:
    """Accept a resting exit (status 'open'); its first candle checked opens at
    `watched_from_ms`."""
    conn.execute(
        """INSERT INTO paper_orders (account, client_order_id, symbol, side, quantity, status,
                                     fee, at_ms, kind, trigger_price, watched_from_ms)
           VALUES (%s, %s, %s, %s, %s, 'open', 0, %s, %s, %s, %s)""",
        (
            account,
            client_order_id,
            symbol,
            side,
            quantity,
            at_ms,
            kind,
            trigger_price,
            watched_from_ms,
        ),
    )


def resting_orders(
    conn: psycopg.Connection, account: str, symbol: str | None = None
) -> list[RestingOrder]:
    """The account's open resting exits (of one market when `symbol` is given), oldest first."""
    rows = conn.execute(
        """SELECT client_order_id, symbol, side, quantity, kind, trigger_price, watched_from_ms
           FROM paper_orders
           WHERE account = %s AND status = 'open' AND (%s::text IS NULL OR symbol = %s)
           ORDER BY at_ms, client_order_id""",
        (account, symbol, symbol),
    ).fetchall()
    return [RestingOrder(r[0], r[1], r[2], float(r[3]), r[4], float(r[5]), int(r[6])) for r in rows]


def watched_until(conn: psycopg.Connection, account: str, symbol: str, next_ms: int) -> None:
    """Every open resting exit of the market has been checked on the candles before
    `next_ms`."""
    conn.execute(
        """UPDATE paper_orders SET watched_from_ms = %s
           WHERE account = %s AND symbol = %s AND status = 'open' AND watched_from_ms < %s""",
        (next_ms, account, symbol, next_ms),
    )


def close_resting(
    conn: psycopg.Connection,
    account: str,
    client_order_id: str,
    *,
    status: str,
    quantity: float | None = None,
    price: float | None = None,
    fee: float = 0.0,
    reason: str | None = None,
    at_ms: int,
) -> bool:
    """An open resting exit filled, cancelled or expired; False if it was no longer open."""
    row = conn.execute(
        """UPDATE paper_orders SET status = %s, quantity = COALESCE(%s, quantity), price = %s,
                  fee = %s, reason = %s, at_ms = %s
           WHERE account = %s AND client_order_id = %s AND status = 'open'
           RETURNING 1""",
        (status, quantity, price, fee, reason, at_ms, account, client_order_id),
    ).fetchone()
    return row is not None
