"""What every manager of one account does, whatever turns decisions into orders.

`PositionManager` (one market's side signal) and `PortfolioManager` (every market to a target
weight) share it: orders left unanswered are resolved by client order id, the book is
reconciled with the broker, every order row is written before the order is sent and its
answer, fill and book move are recorded together, the kill switch and the daily loss limit
flatten everything (reduce-only) and halt the account. One copy of these rules means the two
managers cannot drift apart on the parts that keep money safe.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.data.timeframes import DAY_MS
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    FILLED,
    OPEN,
    REJECTED,
    SELL,
    Broker,
    BrokerError,
    ExitOrder,
    OrderRequest,
    OrderResult,
)
from pipeline.execution.orders import client_order_id
from pipeline.execution.risk import RiskConfig
from pipeline.store import trading
from pipeline.store.database import Database

log = logging.getLogger(__name__)

FINAL = (FILLED, REJECTED, CANCELLED)


@dataclass(frozen=True)
class Difference:
    symbol: str
    what: str  # position or open_order
    book: float | str | None
    broker: float | str | None

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "what": self.what, "book": self.book, "broker": self.broker}


@dataclass
class Gate:
    """The risk check before trading: `action` None lets the execution trade (`equity` is then
    the account's equity read once, before any order); otherwise it is "halted" or "daily loss
    limit", and `orders` are the flattening orders the latter sent."""

    action: str | None
    note: str = ""
    equity: float | None = None
    orders: list[OrderResult] = field(default_factory=list)


def sign(quantity: float) -> int:
    return 0 if quantity == 0 else (1 if quantity > 0 else -1)


class AccountDesk:
    """One account's book against one broker, within one set of risk limits."""

    rests_exits = False  # whether this desk places resting stops and take-profits

    def __init__(
        self,
        db: Database,
        broker: Broker,
        risk: RiskConfig,
        exchange: str,
        timeframe: str,
        step_ms: int,
    ):
        self.db, self.broker, self.risk = db, broker, risk
        self.account = broker.name
        self.exchange, self.timeframe, self.step_ms = exchange, timeframe, step_ms

    # -- orders left unanswered ----------------------------------------------------------
    def resolve_unanswered(self, symbols: list[str] | None = None) -> list[OrderResult]:
        """Record what became of each order a run left unanswered ('sent': the process died
        between writing the row and hearing back; 'unknown': the broker failed past its retry
        bound), by looking its client order id up at the broker, so the book catches up with
        a fill the exchange made. One the broker never received is left as it is: the next
        run that wants it sends it (once, under the same client order id). Runs before every
        reconciliation: without it a fill nobody heard of reads as a difference forever.
        Raises `BrokerError` when the broker cannot be asked (nothing is then traded)."""
        with self.db.connection() as conn:
            pending = trading.unanswered_orders(conn, self.account, symbols)
        settled = []
        for order in pending:
            result = self.broker.lookup(order.symbol, order.client_order_id)
            if result is None:
                log.info(
                    "order %s (%s) is not at the broker: never placed",
                    order.client_order_id,
                    order.status,
                )
                continue
            log.warning(
                "order %s was left %s; the broker says %s, %.6g filled: recorded",
                order.client_order_id,
                order.status,
                result.status,
                result.filled,
            )
            self._settle(order.id, order.symbol, order.side, result, None)
            settled.append(result)
        return settled + self.resolve_resting(symbols)

    def resolve_resting(self, symbols: list[str] | None = None) -> list[OrderResult]:
        """Record what became of each resting exit the book holds open: one that filled
        (maybe while no process ran) is booked with its fill, one cancelled or expired is
        closed. Those still resting stay open."""
        with self.db.connection() as conn:
            resting = trading.resting_exits(conn, self.account, symbols)
        settled = []
        for order in resting:
            result = self.broker.lookup(order.symbol, order.client_order_id)
            if result is None or result.status == OPEN:
                continue  # still resting (or never arrived: reconciliation reports it)
            log.info(
                "resting exit %s: the broker says %s, %.6g filled at %s",
                order.client_order_id,
                result.status,
                result.filled,
                result.average_price,
            )
            self._settle(order.id, order.symbol, order.side, result, None)
            settled.append(result)
        return settled

    # -- reconciliation -------------------------------------------------------------------
    def reconcile(self, symbols: list[str] | None = None) -> list[Difference]:
        """Positions and open orders at the broker against the book; every difference is
        logged and recorded (table `reconciliations`), none is corrected silently.

        With `symbols`, only those markets, their open orders asked for one market at a time
        (one cheap request each); without, every market (a full reconciliation)."""
        self.resolve_unanswered(symbols)
        held = self.broker.positions()
        # Resting exits are asked for where this desk places them (a barrier model's); a full
        # reconciliation asks for every kind.
        stops = self.rests_exits or symbols is None
        if symbols is None:
            resting = self.broker.open_orders()
        else:
            resting = [o for s in dict.fromkeys(symbols) for o in self.broker.open_orders(s, stops)]
        with self.db.connection() as conn:
            ours = trading.book(conn, self.account)
            open_rows = {
                o.client_order_id: o.symbol
                for o in trading.orders_with_status(conn, self.account, OPEN)
                if symbols is None or o.symbol in symbols
            }
        names = sorted(set(held) | {s for s, p in ours.items() if p.quantity != 0})
        if symbols is not None:
            names = [s for s in names if s in symbols]
        differences = []
        for symbol in names:
            mine = ours[symbol].quantity if symbol in ours else 0.0
            theirs = held[symbol].quantity if symbol in held else 0.0
            if not math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-9):
                differences.append(Difference(symbol, "position", mine, theirs))
        for order in resting:
            if symbols is not None and order.symbol not in symbols:
                continue
            if order.client_order_id not in open_rows:
                differences.append(
                    Difference(order.symbol, "open_order", None, order.client_order_id)
                )
        seen = {o.client_order_id for o in resting}
        for cid in sorted(set(open_rows) - seen):
            differences.append(Difference(open_rows[cid], "open_order", cid, None))
        with self.db.connection() as conn:
            trading.record_reconciliation(conn, self.account, [d.to_json() for d in differences])
        for d in differences:
            log.warning(
                "reconciliation %s %s: book %s, broker %s", d.symbol, d.what, d.book, d.broker
            )
        return differences

    def adopt(self) -> list[Difference]:
        """Make the book hold what the broker holds (an operator's decision after a report)."""
        differences = [d for d in self.reconcile() if d.what == "position"]
        held = self.broker.positions()
        with self.db.connection() as conn:
            for d in differences:
                position = held.get(d.symbol)
                trading.set_book(
                    conn,
                    self.account,
                    d.symbol,
                    position.quantity if position else 0.0,
                    position.entry_price if position else None,
                )
        return differences

    @staticmethod
    def mismatch_note(differences: list[Difference]) -> str:
        return (
            "; ".join(f"{d.what}: book {d.book}, broker {d.broker}" for d in differences)
            + " (run `signals reconcile`)"
        )

    # -- stopping ---------------------------------------------------------------------------
    def flatten_all(self, reason: str, at_ms: int) -> list[OrderResult]:
        """Cancel resting orders (first: a resting exit must not act on what follows), then
        close every position the broker holds (reduce-only)."""
        results = []
        cancel = getattr(self.broker, "cancel", None)  # any open order, ours or not
        for order in self.broker.open_orders():
            if cancel is not None:
                cancel(order)
            else:
                self.broker.cancel_exit(order.symbol, order.client_order_id)
        self.resolve_resting()  # the book's resting exits: now cancelled (or filled first)
        for symbol, position in sorted(self.broker.positions().items()):
            side = SELL if position.quantity > 0 else BUY
            cid = client_order_id(self.account, symbol, "flatten", at_ms)
            request = OrderRequest(cid, symbol, side, abs(position.quantity), reduce_only=True)
            results.append(self._place(request, "flatten", None, None))
        log.warning("flattened %d position(s): %s", len(results), reason)
        return results

    def _kill(self, state: trading.TradingState, why: str, close_ms: int) -> list[OrderResult]:
        """The kill switch: flatten what the broker holds, whatever the book says (a
        disagreeing book is then reported by the next reconciliation), and halt until an
        operator resumes."""
        orders = self.flatten_all(why, close_ms)
        self._halt(state, why, None)
        return orders

    def _risk_gate(self, state: trading.TradingState, close_ms: int) -> Gate:
        """A halt still in force, or the daily loss limit broken now (flatten, halt until the
        next UTC day); else the trading state is saved with the day's starting equity and the
        equity read here is the one the execution sizes from."""
        if state.halted and (state.halted_reason or "").startswith("kill switch"):
            state = trading.TradingState(False, None, None, state.day, state.day_start_equity)
            log.warning("kill switch off: trading resumes")  # it was on for the last run
        if state.halted:
            if state.halted_until_ms is None or close_ms < state.halted_until_ms:
                return Gate("halted", state.halted_reason or "")
            state = trading.TradingState(False, None, None, state.day, state.day_start_equity)
        equity = self.broker.equity()
        state = self._roll_day(state, equity, close_ms)
        limit_equity = state.day_start_equity * (1.0 - self.risk.daily_loss_limit)
        if equity < limit_equity:
            why = (
                f"daily loss limit: equity {equity:.2f} < {limit_equity:.2f} "
                f"({self.risk.daily_loss_limit:.1%} below the day's start)"
            )
            orders = self.flatten_all(why, close_ms)
            next_day = (close_ms // DAY_MS + 1) * DAY_MS
            self._halt(state, why, next_day)
            return Gate("daily loss limit", why, equity, orders)
        self._save_state(state)
        return Gate(None, equity=equity)

    # -- orders -----------------------------------------------------------------------------
    def _place(
        self, request: OrderRequest, purpose: str, signal_id: int | None, candle: int | None
    ) -> OrderResult:
        """Write the order's row, send it, record the answer. A row already answered (a
        retried run) is answered from the record and never sent again."""
        result = self._send_recorded(
            request, request.reduce_only, purpose, signal_id, candle, self.broker.place
        )
        if result.status == REJECTED:
            log.warning(
                "order %s %s %s %.6g refused: %s",
                request.client_order_id,
                request.side,
                request.symbol,
                request.quantity,
                result.reason,
            )
        return result

    def _place_exit(self, order: ExitOrder, signal_id: int | None) -> OrderResult:
        """Rest a stop or take-profit the same way: its row first, then the broker."""
        return self._send_recorded(order, True, order.kind, signal_id, None, self.broker.place_exit)

    def _send_recorded(
        self,
        order: OrderRequest | ExitOrder,
        reduce_only: bool,
        purpose: str,
        signal_id: int | None,
        candle: int | None,
        send: Callable[[Any], OrderResult],
    ) -> OrderResult:
        with self.db.connection() as conn:
            row = trading.open_order_row(
                conn,
                account=self.account,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                reduce_only=reduce_only,
                purpose=purpose,
                signal_id=signal_id,
            )
        # Answered before (a retried run): never sent again. A resting exit's answer is OPEN;
        # a market order left open is sent again, so that its look-up brings the fill.
        answered = (*FINAL, OPEN) if isinstance(order, ExitOrder) else FINAL
        if row.status in answered:
            return OrderResult(
                order.client_order_id,
                None,
                row.status,
                row.filled,
                row.average_price,
                row.fee,
                0,
                row.reason,
            )
        try:
            result = send(order)
        except BrokerError as err:
            with self.db.connection() as conn:
                trading.mark_order_unknown(conn, row.id, str(err))
            raise
        self._settle(row.id, order.symbol, order.side, result, candle)
        return result

    def _settle(
        self, order_id: int, symbol: str, side: str, result: OrderResult, candle: int | None
    ) -> None:
        """The broker's answer, its fill and the book's move, in one transaction."""
        with self.db.connection() as conn:
            trading.settle_order(
                conn,
                account=self.account,
                order_id=order_id,
                symbol=symbol,
                side=side,
                status=result.status,
                exchange_order_id=result.exchange_order_id,
                filled=result.filled,
                average_price=result.average_price,
                fee=result.fee,
                reason=result.reason,
                at_ms=result.timestamp_ms,
                candle_ms=candle,
            )

    # -- the book and the trading state -----------------------------------------------------
    def _book_quantity(self, symbol: str) -> float:
        with self.db.connection() as conn:
            return trading.book_position(conn, self.account, symbol).quantity

    def _roll_day(
        self, state: trading.TradingState, equity: float, close_ms: int
    ) -> trading.TradingState:
        day = dt.datetime.fromtimestamp(close_ms / 1000, tz=dt.UTC).date()
        if state.day != day or state.day_start_equity is None:
            return trading.TradingState(
                state.halted, state.halted_reason, state.halted_until_ms, day, equity
            )
        return state

    def _halt(self, state: trading.TradingState, why: str, until_ms: int | None) -> None:
        self._save_state(
            trading.TradingState(True, why, until_ms, state.day, state.day_start_equity)
        )

    def _save_state(self, state: trading.TradingState) -> None:
        with self.db.connection() as conn:
            trading.save_trading_state(conn, self.account, state)
