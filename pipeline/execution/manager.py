"""The position manager: from recorded signals to orders, within the risk limits.

For each executed candle it (0) records what became of orders an earlier run left unanswered
(killed between the order row and the answer, or the broker failing past its bound) by their
client order ids, (1) obeys the kill switch (flatten everything, trade nothing),
(2) reconciles the market with the broker and refuses to trade on any difference, (3) checks
the daily loss limit (flatten, halt until the next UTC day), (4) takes the side to hold by
the backtest's rule and (5) sends at most a reduce-only close and an opening order, each with
a client order id derived from the signal, recording each before it is sent. A candle that
was already executed for the market is not executed again, so a retried run is harmless.
Steps (0) to (3) and the order plumbing are `AccountDesk`'s (`pipeline.execution.desk`),
shared with the portfolio manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.execution.broker import BUY, FILLED, SELL, OrderRequest, OrderResult
from pipeline.execution.desk import AccountDesk, Difference, sign
from pipeline.execution.orders import client_order_id
from pipeline.execution.risk import target_side
from pipeline.signals.sides import FLAT
from pipeline.store import trading
from pipeline.store.candles import candle_times
from pipeline.store.signals import SignalRow, recent_sides

__all__ = ["Difference", "Execution", "PositionManager"]


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
            "orders": [o.to_json() for o in self.orders],
        }


class PositionManager(AccountDesk):
    """One market's recorded side signals → its position (the shared parts: `AccountDesk`)."""

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
        # The kill switch acts first, whatever the book says.
        why = self.risk.killed()
        if why:
            done.orders = self._kill(state, why, close_ms)
            self._flattened(symbol)
            done.action, done.note = "kill switch", why
            done.after = self._book_quantity(symbol)
            self._mark(symbol, candle)
            return done
        if mine.last_candle_ms is not None and candle <= mine.last_candle_ms:
            done.action, done.note = "stale", "this candle (or a later one) was already executed"
            done.orders = self._stale(signal, mine.quantity)
            return done
        if now_ms is not None and now_ms >= close_ms + self.step_ms:
            done.action = "late"
            done.note = f"the next candle closed {(now_ms - close_ms) / 1000:.0f}s ago: not traded"
            self._mark(symbol, candle)
            return done
        differences = self.reconcile([symbol])
        if differences:
            done.action, done.note = "mismatch", self.mismatch_note(differences)
            return done
        gate = self._risk_gate(state, close_ms)
        if gate.action is not None:
            done.action, done.note, done.orders = gate.action, gate.note, gate.orders
            if gate.equity is not None:  # the daily loss limit: it read equity, flattened
                self._flattened(symbol)
                done.equity = gate.equity
                done.after = self._book_quantity(symbol)
            self._mark(symbol, candle)
            return done

        self._trade(signal, self._book_quantity(symbol), done)
        done.after = self._book_quantity(symbol)
        done.equity = self.broker.equity()
        with self.db.connection() as conn:
            trading.record_equity(conn, self.account, close_ms, done.equity)
        self._mark(symbol, candle)
        return done

    def _trade(self, signal: SignalRow, quantity: float, done: Execution) -> None:
        """The side the backtest holds (the latest decision within the horizon): a reduce-only
        close and an opening order when it changes. Sets `done`'s action, target and orders."""
        symbol, candle = signal.symbol, signal.candle_ms
        done.target = self._target(symbol, candle)
        current = sign(quantity)
        if current == done.target:
            done.action = "held" if current else "none"
            return
        if current:
            side = SELL if current > 0 else BUY
            result = self._send(signal, "close", side, abs(quantity), True, candle)
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

    def _flattened(self, symbol: str) -> None:
        """The kill switch or the loss limit flattened the account (a subclass forgets what
        it kept about the market's trade)."""

    def _stale(self, signal: SignalRow, quantity: float) -> list[OrderResult]:
        """A candle already executed: nothing to send (a subclass may finish what a run that
        died left undone)."""
        return []

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
        cid = self._cid(signal, candle, purpose)
        request = OrderRequest(cid, signal.symbol, side, quantity, reduce_only)
        return self._place(request, purpose, signal.id, candle)

    def _cid(self, signal: SignalRow, candle: int, purpose: str) -> str:
        """The client order id of `purpose` for the signal's market and `candle`: the same on
        every retry, so an order is never placed twice."""
        return client_order_id(
            self.account,
            signal.exchange,
            signal.symbol,
            signal.timeframe,
            candle,
            signal.model_id,
            purpose,
        )

    def _mark(self, symbol: str, candle: int) -> None:
        with self.db.connection() as conn:
            trading.mark_candle(conn, self.account, symbol, candle)
