"""The position manager: from recorded signals to orders, within the risk limits.

For each executed candle it (0) records what became of orders an earlier run left unanswered
(killed between the order row and the answer, or the broker failing past its bound) by their
client order ids, (1) obeys the kill switch (flatten everything, trade nothing),
(2) reconciles the market with the broker and refuses to trade on any difference, (3) checks
the daily loss limit (flatten, halt until the next UTC day), (4) takes the side to hold by
the backtest's rule and (5) sends at most a reduce-only close and an opening order, each with
a client order id derived from the signal, recording each before it is sent. A candle that
was already executed for the market is not executed again, so a retried run is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
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
    OrderRequest,
    OrderResult,
)
from pipeline.execution.orders import client_order_id
from pipeline.execution.risk import RiskConfig, target_side
from pipeline.signals.sides import FLAT
from pipeline.store import trading
from pipeline.store.candles import candle_times
from pipeline.store.database import Database
from pipeline.store.signals import SignalRow, recent_sides

log = logging.getLogger(__name__)

FINAL = (FILLED, REJECTED, CANCELLED)


@dataclass
class Execution:
    """What one candle's execution did, for the run's log and metadata."""

    symbol: str
    candle_ms: int
    action: str  # none, opened, closed, reversed, held, rejected, stale, mismatch, halted, …
    target: int = FLAT
    before: float = 0.0
    after: float = 0.0
    equity: float | None = None
    orders: list[OrderResult] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "candle_ms": self.candle_ms,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "equity": self.equity,
            "note": self.note,
            "orders": [
                {
                    "client_order_id": o.client_order_id,
                    "status": o.status,
                    "filled": o.filled,
                    "price": o.average_price,
                    "fee": o.fee,
                    "reason": o.reason,
                }
                for o in self.orders
            ],
        }


@dataclass(frozen=True)
class Difference:
    symbol: str
    what: str  # position or open_order
    book: float | str | None
    broker: float | str | None

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "what": self.what, "book": self.book, "broker": self.broker}


def _sign(quantity: float) -> int:
    return 0 if quantity == 0 else (1 if quantity > 0 else -1)


class PositionManager:
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
        return settled

    # -- reconciliation -------------------------------------------------------------------
    def reconcile(self, symbols: list[str] | None = None) -> list[Difference]:
        """Positions and open orders at the broker against the book; every difference is
        logged and recorded (table `reconciliations`), none is corrected silently.

        With `symbols`, only those markets, their open orders asked for one market at a time
        (one cheap request each); without, every market (a full reconciliation)."""
        self.resolve_unanswered(symbols)
        held = self.broker.positions()
        if symbols is None:
            resting = self.broker.open_orders()
        else:
            resting = [o for s in dict.fromkeys(symbols) for o in self.broker.open_orders(s)]
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

    # -- execution ------------------------------------------------------------------------
    def execute(self, signal: SignalRow, now_ms: int | None = None) -> Execution:
        """Act on one recorded signal (the candle `signal.candle_ms` has just closed).

        `now_ms` is the exchange's clock: once the next candle has closed too, its open (the
        price this decision was for) is gone, and the signal is recorded but not traded."""
        symbol, candle = signal.symbol, signal.candle_ms
        close_ms = candle + self.step_ms
        self.resolve_unanswered([symbol])  # a killed or failed run's orders, first
        with self.db.connection() as conn:
            mine = trading.book_position(conn, self.account, symbol)
            state = trading.trading_state(conn, self.account)
        done = Execution(symbol, candle, "none", before=mine.quantity, after=mine.quantity)
        # The kill switch acts first, whatever the book says: it flattens what the broker
        # holds (a disagreeing book is then reported by the next reconciliation).
        why = self.risk.killed()
        if why:
            done.orders = self.flatten_all(why, close_ms)
            done.action, done.note = "kill switch", why
            done.after = self._book_quantity(symbol)
            self._halt(state, why, None)
            self._mark(symbol, candle)
            return done
        if mine.last_candle_ms is not None and candle <= mine.last_candle_ms:
            done.action, done.note = "stale", "this candle (or a later one) was already executed"
            return done
        if now_ms is not None and now_ms >= close_ms + self.step_ms:
            done.action = "late"
            done.note = f"the next candle closed {(now_ms - close_ms) / 1000:.0f}s ago: not traded"
            self._mark(symbol, candle)
            return done
        differences = self.reconcile([symbol])
        if differences:
            done.action = "mismatch"
            done.note = (
                "; ".join(f"{d.what}: book {d.book}, broker {d.broker}" for d in differences)
                + " (run `signals reconcile`)"
            )
            return done
        if state.halted and (state.halted_reason or "").startswith("kill switch"):
            state = trading.TradingState(False, None, None, state.day, state.day_start_equity)
            log.warning("kill switch off: trading resumes")  # it was on for the last run
        if state.halted:
            if state.halted_until_ms is None or close_ms < state.halted_until_ms:
                done.action, done.note = "halted", state.halted_reason or ""
                self._mark(symbol, candle)
                return done
            state = trading.TradingState(False, None, None, state.day, state.day_start_equity)
        equity = self.broker.equity()
        state = self._roll_day(state, equity, close_ms)
        limit_equity = state.day_start_equity * (1.0 - self.risk.daily_loss_limit)
        if equity < limit_equity:
            why = (
                f"daily loss limit: equity {equity:.2f} < {limit_equity:.2f} "
                f"({self.risk.daily_loss_limit:.1%} below the day's start)"
            )
            done.orders = self.flatten_all(why, close_ms)
            next_day = (close_ms // DAY_MS + 1) * DAY_MS
            self._halt(state, why, next_day)
            done.action, done.note, done.equity = "daily loss limit", why, equity
            done.after = self._book_quantity(symbol)
            self._mark(symbol, candle)
            return done
        self._save_state(state)

        done.target = self._target(symbol, candle)
        current = _sign(mine.quantity)
        if current == done.target:
            done.action = "held" if current else "none"
        else:
            if current:
                side = SELL if current > 0 else BUY
                result = self._send(signal, "close", side, abs(mine.quantity), True, candle)
                done.orders.append(result)
                if result.status != FILLED:
                    done.action, done.note = "rejected", f"close refused: {result.reason}"
            if done.target and done.action != "rejected":
                result = self._open(signal, done.target, candle)
                if result is not None:
                    done.orders.append(result)
                    if result.status != FILLED:
                        done.action = "rejected"
                        done.note = f"open refused: {result.reason}"
                elif not done.note:
                    done.note = "order below the market's minimum size; not opened"
            if done.action != "rejected":
                done.action = (
                    "reversed" if current and done.target else "opened" if done.target else "closed"
                )
        done.after = self._book_quantity(symbol)
        done.equity = self.broker.equity()
        with self.db.connection() as conn:
            trading.record_equity(conn, self.account, close_ms, done.equity)
        self._mark(symbol, candle)
        return done

    def flatten_all(self, reason: str, at_ms: int) -> list[OrderResult]:
        """Close every position the broker holds (reduce-only) and cancel resting orders."""
        results = []
        cancel = getattr(self.broker, "cancel", None)
        for order in self.broker.open_orders():
            if cancel is not None:
                cancel(order)
        for symbol, position in sorted(self.broker.positions().items()):
            side = SELL if position.quantity > 0 else BUY
            cid = client_order_id(self.account, symbol, "flatten", at_ms)
            request = OrderRequest(cid, symbol, side, abs(position.quantity), reduce_only=True)
            results.append(self._place(request, "flatten", None, None))
        log.warning("flattened %d position(s): %s", len(results), reason)
        return results

    # -- helpers --------------------------------------------------------------------------
    def _target(self, symbol: str, candle: int) -> int:
        first = candle - (self.risk.horizon - 1) * self.step_ms
        with self.db.connection() as conn:
            decisions = recent_sides(conn, self.exchange, symbol, self.timeframe, first, candle)
            stored = candle_times(conn, self.exchange, symbol, self.timeframe, first, candle)
        present = stored | {candle}
        return target_side(decisions, candle, self.step_ms, self.risk.horizon, present)

    def _open(self, signal: SignalRow, side: int, candle: int) -> OrderResult | None:
        symbol = signal.symbol
        self.broker.configure_market(symbol, self.risk.leverage, self.risk.margin_mode)
        equity = self.broker.equity()
        price = self.broker.price(symbol)
        notional = min(
            self.risk.risk_fraction * self.risk.leverage * equity, self.risk.max_notional
        )
        quantity = notional / price
        if quantity <= 0:
            return None
        return self._send(signal, "open", BUY if side > 0 else SELL, quantity, False, candle)

    def _send(
        self,
        signal: SignalRow,
        purpose: str,
        side: str,
        quantity: float,
        reduce_only: bool,
        candle: int,
    ) -> OrderResult:
        cid = client_order_id(
            self.account,
            signal.exchange,
            signal.symbol,
            signal.timeframe,
            candle,
            signal.model_id,
            purpose,
        )
        request = OrderRequest(cid, signal.symbol, side, quantity, reduce_only)
        return self._place(request, purpose, signal.id, candle)

    def _place(
        self, request: OrderRequest, purpose: str, signal_id: int | None, candle: int | None
    ) -> OrderResult:
        with self.db.connection() as conn:
            row = trading.open_order_row(
                conn,
                account=self.account,
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                reduce_only=request.reduce_only,
                purpose=purpose,
                signal_id=signal_id,
            )
        if row.status in FINAL:  # answered before (a retried run): never send it again
            return OrderResult(
                request.client_order_id,
                None,
                row.status,
                row.filled,
                row.average_price,
                row.fee,
                0,
                row.reason,
            )
        try:
            result = self.broker.place(request)
        except BrokerError as err:
            with self.db.connection() as conn:
                trading.mark_order_unknown(conn, row.id, str(err))
            raise
        self._settle(row.id, request.symbol, request.side, result, candle)
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

    def _book_quantity(self, symbol: str) -> float:
        with self.db.connection() as conn:
            return trading.book_position(conn, self.account, symbol).quantity

    def _mark(self, symbol: str, candle: int) -> None:
        with self.db.connection() as conn:
            trading.mark_candle(conn, self.account, symbol, candle)

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
