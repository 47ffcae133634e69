"""The paper broker: an exchange account simulated in PostgreSQL.

It fills market orders at the next price (the feed's last price) made worse by the slippage,
charges the taker fee on the fill's notional, refuses orders that need more margin than the
equity holds, honours reduce-only, and remembers every client order id, so a retried order
is answered from the record instead of filled again. Its wallet and positions live in their
own tables (`paper_*`), apart from the position manager's book, so reconciling them checks
something real.
"""

from __future__ import annotations

import psycopg

from pipeline.execution.broker import (
    BUY,
    FILLED,
    REJECTED,
    BrokerPosition,
    OpenOrder,
    OrderRequest,
    OrderResult,
)
from pipeline.execution.prices import PriceFeed
from pipeline.store.database import Database
from pipeline.store.trading import moved

MARGIN_MODES = ("isolated", "cross")


class PaperBroker:
    def __init__(
        self,
        db: Database,
        feed: PriceFeed,
        account: str = "paper",
        fee: float = 0.0005,
        slippage_bps: float = 0.0,
        initial_balance: float = 10_000.0,
    ):
        if fee < 0 or slippage_bps < 0:
            raise ValueError("fee and slippage are costs: they cannot be negative")
        if initial_balance <= 0:
            raise ValueError("the paper account needs a positive starting balance")
        self.db, self.feed, self.name = db, feed, account
        self.fee, self.slippage = fee, slippage_bps / 10_000.0
        with db.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO paper_accounts (account, balance) VALUES (%s, %s) "
                "ON CONFLICT (account) DO NOTHING",
                (account, initial_balance),
            )

    def __repr__(self) -> str:
        return f"PaperBroker(account={self.name!r}, fee={self.fee}, slippage={self.slippage})"

    # -- reading ---------------------------------------------------------------------------
    def price(self, symbol: str) -> float:
        return self.feed.quote(symbol)[0]

    def balance(self) -> float:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT balance FROM paper_accounts WHERE account = %s", (self.name,)
            ).fetchone()
            conn.commit()
        assert row is not None
        return float(row[0])

    def positions(self) -> dict[str, BrokerPosition]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT symbol, quantity, entry_price FROM paper_positions "
                "WHERE account = %s AND quantity <> 0",
                (self.name,),
            ).fetchall()
            conn.commit()
        return {s: BrokerPosition(s, float(q), float(e)) for s, q, e in rows}

    def equity(self) -> float:
        held = self.positions()
        unrealised = sum(p.quantity * (self.price(s) - p.entry_price) for s, p in held.items())
        return self.balance() + unrealised

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        return []  # market orders only: nothing rests

    # -- trading ---------------------------------------------------------------------------
    def configure_market(self, symbol: str, leverage: int, margin_mode: str) -> None:
        if not 1 <= leverage <= 125:
            raise ValueError(f"leverage must be 1–125, got {leverage}")
        if margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {MARGIN_MODES}, got {margin_mode!r}")
        with self.db.connection() as conn, conn.transaction():
            conn.execute(
                """INSERT INTO paper_positions (account, symbol, leverage, margin_mode)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (account, symbol) DO UPDATE SET
                       leverage = EXCLUDED.leverage, margin_mode = EXCLUDED.margin_mode""",
                (self.name, symbol, leverage, margin_mode),
            )

    def place(self, order: OrderRequest) -> OrderResult:
        with self.db.connection() as conn, conn.transaction():
            # One order at a time per account: the wallet row is the lock.
            conn.execute("SELECT 1 FROM paper_accounts WHERE account = %s FOR UPDATE", (self.name,))
            known = self._recorded(conn, order.client_order_id)
            if known is not None:
                return known
            price, at_ms = self.feed.quote(order.symbol)
            result = self._fill(conn, order, price, at_ms)
            conn.execute(
                """INSERT INTO paper_orders (account, client_order_id, symbol, side, quantity,
                                             status, price, fee, reason, at_ms)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    self.name,
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    result.filled or order.quantity,
                    result.status,
                    result.average_price,
                    result.fee,
                    result.reason,
                    at_ms,
                ),
            )
        return result

    def _recorded(self, conn: psycopg.Connection, client_order_id: str) -> OrderResult | None:
        row = conn.execute(
            """SELECT status, quantity, price, fee, reason, at_ms FROM paper_orders
               WHERE account = %s AND client_order_id = %s""",
            (self.name, client_order_id),
        ).fetchone()
        if row is None:
            return None
        status, quantity, price, fee, reason, at_ms = row
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=client_order_id if status == FILLED else None,  # as first answered
            status=status,
            filled=float(quantity) if status == FILLED else 0.0,
            average_price=price,
            fee=float(fee),
            timestamp_ms=int(at_ms),
            reason=reason,
        )

    def _fill(
        self, conn: psycopg.Connection, order: OrderRequest, price: float, at_ms: int
    ) -> OrderResult:
        def rejected(reason: str) -> OrderResult:
            return OrderResult(order.client_order_id, None, REJECTED, 0.0, None, 0.0, at_ms, reason)

        row = conn.execute(
            """SELECT quantity, entry_price, leverage FROM paper_positions
               WHERE account = %s AND symbol = %s""",
            (self.name, order.symbol),
        ).fetchone()
        quantity, entry, leverage = (float(row[0]), row[1], int(row[2])) if row else (0.0, None, 1)
        signed = order.quantity if order.side == BUY else -order.quantity
        size = order.quantity
        if order.reduce_only:
            if quantity == 0 or (quantity > 0) == (signed > 0):
                return rejected("reduce-only order would not reduce the position")
            size = min(size, abs(quantity))
            signed = size if order.side == BUY else -size
        fill = price * (1.0 + self.slippage if order.side == BUY else 1.0 - self.slippage)
        fee = self.fee * size * fill
        after, after_entry = moved(quantity, entry, signed, fill)
        grows = abs(after) > abs(quantity) or (after != 0 and (after > 0) != (quantity > 0))
        if grows:
            need = self._margin_needed(conn, order.symbol, after, fill, leverage)
            available = self._equity_in(conn) - fee
            if need > available:
                return rejected(
                    f"insufficient margin: needs {need:.2f}, equity after fee {available:.2f}"
                )
        closed = min(abs(quantity), size) if quantity and (quantity > 0) != (signed > 0) else 0.0
        realised = closed * (fill - entry) * (1.0 if quantity > 0 else -1.0) if closed else 0.0
        conn.execute(
            "UPDATE paper_accounts SET balance = balance + %s WHERE account = %s",
            (realised - fee, self.name),
        )
        conn.execute(
            """INSERT INTO paper_positions (account, symbol, quantity, entry_price)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (account, symbol) DO UPDATE SET
                   quantity = EXCLUDED.quantity, entry_price = EXCLUDED.entry_price""",
            (self.name, order.symbol, after, after_entry),
        )
        return OrderResult(
            order.client_order_id, order.client_order_id, FILLED, size, fill, fee, at_ms
        )

    def _equity_in(self, conn: psycopg.Connection) -> float:
        balance = conn.execute(
            "SELECT balance FROM paper_accounts WHERE account = %s", (self.name,)
        ).fetchone()
        held = conn.execute(
            "SELECT symbol, quantity, entry_price FROM paper_positions "
            "WHERE account = %s AND quantity <> 0",
            (self.name,),
        ).fetchall()
        assert balance is not None
        return float(balance[0]) + sum(q * (self.price(s) - e) for s, q, e in held)

    def _margin_needed(
        self, conn: psycopg.Connection, symbol: str, after: float, price: float, leverage: int
    ) -> float:
        """Initial margin of every position once this order is filled."""
        others = conn.execute(
            "SELECT symbol, quantity, leverage FROM paper_positions "
            "WHERE account = %s AND symbol <> %s AND quantity <> 0",
            (self.name, symbol),
        ).fetchall()
        need = abs(after) * price / leverage
        return need + sum(abs(q) * self.price(s) / lev for s, q, lev in others)
