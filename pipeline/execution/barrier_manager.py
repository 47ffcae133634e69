"""The barrier trade, live: entries at market, exits resting at the exchange at the backtest's
levels, so a barrier model trades as its backtest does (`pipeline.backtest.kernel`).

For each closed decision candle t of one market (the order of the steps is the kernel's):

1. What the exchange did meanwhile: every resting exit the book holds open is looked up; a
   fill (a stop or take-profit triggered inside a candle, maybe while no process ran) is
   booked, and once the position is gone its sibling exit is cancelled.
2. The kill switch, a stale or late candle, reconciliation and the loss limits act as for
   every manager (`AccountDesk`); flattening cancels the resting exits first.
3. The backtest's rule at the open after t, with d the decision at t and s the side held:
   - d = s: re-arm — the exits are cancelled and placed again around this open, the time
     limit restarts;
   - d = −s: reverse — exits cancelled, the position closed and d's opened;
   - s held past its time limit (t is its last candle): exits cancelled, closed at market;
   - flat and d ≠ 0: enter, then rest a stop and a take-profit `width_t` from the fill.
   A held position without its exits (a run killed between the entry and the exits) gets
   them placed again under the same client order ids.

The width is k × σ_t × √T from the stored candles up to t (`barrier_widths`, which computes
each σ_t from its own window, so it is bit-equal to the backtest's over any history); where
it is undefined (a gap in the window), the trade has no barriers and leaves by time, as in the
backtest. Checking the levels inside each candle is the broker's job (the replay exchange
and the paper broker: `pipeline.backtest.triggers`).
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.backtest.triggers import STOP, TAKE_PROFIT
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    FILLED,
    REJECTED,
    SELL,
    ExitOrder,
    OrderResult,
)
from pipeline.execution.desk import sign
from pipeline.execution.manager import Execution, PositionManager
from pipeline.features.barriers import barrier_widths
from pipeline.features.labels import LabelRule
from pipeline.store import barrier_trades, trading
from pipeline.store.candles import load_candles
from pipeline.store.signals import SignalRow


class BarrierManager(PositionManager):
    """One market's barrier trades: the checks before trading are `PositionManager`'s, the
    trading is the barrier rule with resting exits."""

    rests_exits = True

    def __init__(self, *args: object, rule: LabelRule, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if rule.barrier_k is None:
            raise ValueError("a barrier manager needs a rule with barriers (barrier_k)")
        self.rule = rule

    # -- execution (the checks before trading: `PositionManager.execute`) -------------------
    def _trade(self, signal: SignalRow, quantity: float, done: Execution) -> None:
        held = sign(quantity)
        if not held:  # exited at a level (or never entered): nothing may rest any more
            done.orders += self._cancel_exits(signal.symbol)
            self._forget(signal.symbol)
        done.target = signal.side
        done.action = self._act(signal, held, done)

    def _flattened(self, symbol: str) -> None:
        self._forget(symbol)

    def _stale(self, signal: SignalRow, quantity: float) -> list[OrderResult]:
        """A run that died between the entry and its exits: its retry rests them now."""
        if not sign(quantity):
            return []
        with self.db.connection() as conn:
            trade = barrier_trades.current(conn, self.account, signal.symbol)
        return self._ensure_exits(signal, trade)

    def _act(self, signal: SignalRow, held: int, done: Execution) -> str:
        """The kernel's rule at the open after the signal's candle; returns the action."""
        symbol, candle, wanted = signal.symbol, signal.candle_ms, signal.side
        with self.db.connection() as conn:
            trade = barrier_trades.current(conn, self.account, symbol)
        if held:
            if wanted == held:
                done.orders += self._cancel_exits(symbol)
                if not sign(self._book_quantity(symbol)):  # an exit filled as it was cancelled
                    self._forget(symbol)
                    return "closed at a level"
                done.orders += self._arm(signal, self.broker.price(symbol), held)
                return "re-armed"
            expired = trade is None or candle >= trade.hold_until_ms
            if wanted != -held and not expired:
                done.orders += self._ensure_exits(signal, trade)
                return "held"
            done.orders += self._cancel_exits(symbol)
            purpose = "reverse" if wanted == -held else "time"
            closing = self._close(signal, purpose)
            if closing is not None:
                done.orders.append(closing)
                if closing.status != FILLED:
                    done.note = f"close refused: {closing.reason}"
                    return "rejected"
            self._forget(symbol)
            if wanted != -held:
                return "closed at the time limit"
        if not wanted:
            return "none" if not held else "closed"
        opened = self._open(signal, wanted, candle)
        if opened is None:
            done.note = "order below the market's minimum size; not opened"
            return "none"
        done.orders.append(opened)
        if opened.status != FILLED:
            done.note = f"open refused: {opened.reason}"
            return "rejected"
        done.orders += self._arm(signal, float(opened.average_price or 0.0), wanted)
        return "reversed" if held else "opened"

    # -- orders -----------------------------------------------------------------------------
    def _close(self, signal: SignalRow, purpose: str) -> OrderResult | None:
        quantity = self._book_quantity(signal.symbol)
        if not quantity:
            return None  # an exit filled before it could be cancelled
        side = SELL if quantity > 0 else BUY
        return self._send(signal, purpose, side, abs(quantity), True, signal.candle_ms)

    def _arm(self, signal: SignalRow, entry: float, side: int) -> list[OrderResult]:
        """Levels around `entry` for the signal's candle, recorded, then rested."""
        width = self.width(signal.symbol, signal.candle_ms)
        hold_until = signal.candle_ms + self.rule.horizon * self.step_ms
        if not math.isfinite(width) or entry <= 0:
            stop = take = math.inf  # no barriers: the trade leaves by time only
        else:
            upper, lower = entry * (1.0 + width), entry * (1.0 - width)
            stop, take = (lower, upper) if side > 0 else (upper, lower)
        trade = barrier_trades.BarrierTrade(
            signal.symbol, side, signal.candle_ms, hold_until, stop, take
        )
        with self.db.connection() as conn:
            barrier_trades.arm(conn, self.account, trade)
        return self._ensure_exits(signal, trade)

    def _ensure_exits(
        self, signal: SignalRow, trade: barrier_trades.BarrierTrade | None
    ) -> list[OrderResult]:
        """Rest the trade's stop and take-profit unless they already rest (same client order
        ids: a run killed after the entry places them now, never twice)."""
        if trade is None or not math.isfinite(trade.stop_price) or trade.take_price <= 0:
            return []
        quantity = abs(self._book_quantity(signal.symbol))
        if not quantity:
            return []
        side = SELL if trade.side > 0 else BUY
        results = []
        for kind, level in ((STOP, trade.stop_price), (TAKE_PROFIT, trade.take_price)):
            cid = self._cid(signal, trade.armed_candle_ms, kind)
            order = ExitOrder(cid, signal.symbol, side, quantity, kind, level)
            results.append(self._place_exit(order, signal.id))
        return results

    def _cancel_exits(self, symbol: str) -> list[OrderResult]:
        """Cancel the market's resting exits; a fill reported instead is booked."""
        with self.db.connection() as conn:
            resting = trading.resting_exits(conn, self.account, [symbol])
        results = []
        for order in resting:
            result = self.broker.cancel_exit(symbol, order.client_order_id)
            if result.status == REJECTED:  # the broker has no such order: it never rested
                result = OrderResult(
                    result.client_order_id, None, CANCELLED, 0.0, None, 0.0, result.timestamp_ms
                )
            self._settle(order.id, symbol, order.side, result, None)
            results.append(result)
        return results

    def _forget(self, symbol: str) -> None:
        with self.db.connection() as conn:
            barrier_trades.close(conn, self.account, symbol)

    # -- levels -----------------------------------------------------------------------------
    def width(self, symbol: str, candle_ms: int) -> float:
        """k × σ_t × √T at the decision candle, from the stored candles of its window."""
        first = candle_ms - self.rule.vol_window * self.step_ms
        with self.db.connection() as conn:
            frame = load_candles(conn, self.exchange, symbol, self.timeframe, first, candle_ms)
        if frame.empty or int(frame["timestamp"].iloc[-1]) != candle_ms:
            return math.nan
        widths = barrier_widths(
            frame["timestamp"].to_numpy(dtype=np.int64),
            frame["close"].to_numpy(dtype=np.float64),
            step_ms=self.step_ms,
            k=self.rule.barrier_k,
            horizon=self.rule.horizon,
            vol_window=self.rule.vol_window,
        )
        return float(widths[-1])
