"""The portfolio manager: one decision candle's target weights → market orders that rebalance
the account as the portfolio backtest fills them (`pipeline.backtest.portfolio`).

At each decision it (1) records what became of orders an earlier run left unanswered,
(2) obeys the kill switch (flatten everything, reduce-only; halt), (3) does nothing for a
candle already executed (or older than one), (4) records but does not trade a candle whose
next candle has closed too (its open, the price the decision was for, is gone), (5) reconciles
every target market with the broker and trades nothing on any difference, (6) obeys a halt and
the daily loss limit, then (7) reads the account's value V ONCE, before any order, and plans
every ORDERED market's legs from it (`pipeline.execution.portfolio_plan`: q* = w × V / p, Δ
rounded down to the market's step, the minimum notional, a close and an open where Δ crosses
zero). Markets not ordered are not touched, whatever their weight drifted to.

The plan is recorded (table `portfolio_executions`) before any order is sent, and every order
has a client order id derived from (account, "portfolio", candle, market, leg) and a row
written before it is sent: a retried run executes the recorded plan, so an order answered
before is answered from the record and never sent twice, and one never received is sent once.

Order of the orders: every reduce-only leg (closes and reductions) first, then the opening
legs, each group in the targets' order. The quantities do not depend on it (they are all sized
from the one V, as the backtest's are); freeing margin before using it keeps the margin check
from refusing an opening order that the final positions allow.

Leverage: one for the account, `portfolio_plan.leverage_for` of the gross exposure once the
orders fill (ordered markets at their planned quantities, every other position at its current
price), at least `RiskConfig.leverage`; every market that holds a position once the orders
fill is configured with it (and `RiskConfig.margin_mode`) once per execution that sends an
order, so that no position's margin is counted at an older, lower leverage. The
backtest accounts like cross margin (one equity, liquidated only as a whole): "cross" matches
it; "isolated" puts each position's liquidation at its own margin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.execution.broker import FILLED, MarketRules, OrderRequest, OrderResult
from pipeline.execution.desk import AccountDesk
from pipeline.execution.orders import client_order_id
from pipeline.execution.portfolio_plan import (
    NOT_ORDERED,
    Leg,
    MarketExecution,
    MarketTarget,
    leverage_for,
    plan_market,
)
from pipeline.store import portfolio_executions as record
from pipeline.store import trading

log = logging.getLogger(__name__)

__all__ = ["MarketTarget", "PortfolioExecution", "PortfolioManager"]


@dataclass
class PortfolioExecution:
    """What one decision candle's execution did, for the run's log and metadata.

    `action`: rebalanced (orders filled), none (nothing to send), rejected (an order was
    refused: `note` says which), stale, late, mismatch, halted, kill switch, daily loss limit,
    no equity. `orders`: the flattening orders of the kill switch or the daily loss limit
    (a market's own orders are in `markets`)."""

    candle_ms: int
    action: str
    equity_before: float | None = None  # V: the value every order was sized from
    equity_after: float | None = None
    leverage: int | None = None
    markets: list[MarketExecution] = field(default_factory=list)
    orders: list[OrderResult] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "candle_ms": self.candle_ms,
            "action": self.action,
            "equity_before": self.equity_before,
            "equity_after": self.equity_after,
            "leverage": self.leverage,
            "note": self.note,
            "markets": [m.to_json() for m in self.markets],
            "orders": [o.to_json() for o in self.orders],
        }


class PortfolioManager(AccountDesk):
    """Every market of an account to its target weight (the shared parts: `AccountDesk`)."""

    def execute(
        self, candle_ms: int, targets: Sequence[MarketTarget], now_ms: int | None = None
    ) -> PortfolioExecution:
        """Act on the portfolio layer's decision at candle `candle_ms`'s close.

        `targets`: every market of the portfolio, in the order its orders are sent within
        each group (see the module docstring). `now_ms` is the exchange's clock."""
        targets = list(targets)
        symbols = [t.symbol for t in targets]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"a market appears twice in the targets: {symbols}")
        close_ms = candle_ms + self.step_ms
        self.resolve_unanswered(symbols)  # a killed or failed run's orders, first
        with self.db.connection() as conn:
            book = trading.book(conn, self.account)
            state = trading.trading_state(conn, self.account)
            last = record.newest(conn, self.account)
        held = {s: p.quantity for s, p in book.items() if p.quantity != 0}
        done = PortfolioExecution(
            candle_ms,
            "none",
            markets=[
                MarketExecution(t.symbol, t.weight, t.ordered, before=held.get(t.symbol, 0.0))
                for t in targets
            ],
        )
        why = self.risk.killed()
        if why:  # first, whatever the book says
            done.orders = self._kill(state, why, close_ms)
            return self._finish(done, "kill switch", why)
        if last is not None and (
            last.candle_ms > candle_ms
            or (last.candle_ms == candle_ms and last.status == record.DONE)
        ):
            note = "this candle (or a later one) was already executed"
            return self._finish(done, "stale", note, keep=False)
        if now_ms is not None and now_ms >= close_ms + self.step_ms:
            note = f"the next candle closed {(now_ms - close_ms) / 1000:.0f}s ago: not traded"
            return self._finish(done, "late", note)
        differences = self.reconcile(symbols)
        if differences:
            return self._finish(done, "mismatch", self.mismatch_note(differences), keep=False)
        gate = self._risk_gate(state, close_ms)
        if gate.action is not None:
            done.orders, done.equity_before = gate.orders, gate.equity
            return self._finish(done, gate.action, gate.note)
        assert gate.equity is not None
        if last is not None and last.candle_ms == candle_ms and last.plan is not None:
            plan, done.note = last.plan, "resumed the plan an earlier run recorded"
        else:
            if not gate.equity > 0:
                done.equity_before = gate.equity
                return self._finish(done, "no equity", f"equity {gate.equity}: nothing to size")
            fresh = self._plan(candle_ms, targets, held, gate.equity)
            with self.db.connection() as conn:
                plan = record.plan(conn, self.account, candle_ms, self.timeframe, fresh)
        done.equity_before = float(plan["equity"])
        done.leverage = plan["leverage"]
        done.markets = [MarketExecution.from_plan(m) for m in plan["markets"]]
        refused = self._trade(done, plan["configure"])
        done.equity_after = self.broker.equity()
        with self.db.connection() as conn:
            trading.record_equity(conn, self.account, close_ms, done.equity_after)
        sent = any(m.orders for m in done.markets)
        action = "rejected" if refused else "rebalanced" if sent else "none"
        note = "; ".join(filter(None, [done.note, *refused]))
        return self._finish(done, action, note)

    # -- planning -------------------------------------------------------------------------
    def _plan(
        self,
        candle_ms: int,
        targets: list[MarketTarget],
        held: dict[str, float],
        equity: float,
    ) -> dict[str, Any]:
        """Every market's legs from the one value `equity` (JSON, as recorded)."""
        markets = []
        for t in targets:
            price = self.broker.price(t.symbol) if t.ordered else None
            rules = self.broker.market_rules(t.symbol) if t.ordered else MarketRules()
            markets.append(
                plan_market(
                    t,
                    held.get(t.symbol, 0.0),
                    price,
                    equity,
                    rules,
                    self.risk.max_notional,
                    lambda leg, s=t.symbol: client_order_id(
                        self.account, "portfolio", candle_ms, s, leg
                    ),
                )
            )
        leverage, configure = None, []
        if any(m.legs for m in markets):
            after = {m.symbol: (m.after_plan(), m.price) for m in markets if m.ordered}
            for symbol, quantity in held.items():  # positions the decision leaves alone
                if symbol not in after:
                    after[symbol] = (quantity, self.broker.price(symbol))
            gross = sum(abs(q) * p for q, p in after.values() if q != 0) / equity
            leverage = leverage_for(gross, self.risk.leverage)
            configure = [s for s, (q, _) in after.items() if q != 0]
        return {
            "equity": equity,
            "leverage": leverage,
            "configure": configure,
            "markets": [m.plan_json() for m in markets],
        }

    # -- trading --------------------------------------------------------------------------
    def _trade(self, done: PortfolioExecution, configure: list[str]) -> list[str]:
        """Send the planned legs, reduce-only ones first; what was refused, in words."""
        for symbol in configure:
            self.broker.configure_market(symbol, int(done.leverage or 1), self.risk.margin_mode)
        refused = []
        for m in done.markets:
            for leg in m.legs:
                if leg.reduce_only:
                    refused += self._send(m, leg)
        for m in done.markets:
            opening = [leg for leg in m.legs if not leg.reduce_only]
            if not opening:
                continue
            unfilled = [o for o in m.orders if o.status != FILLED]
            if unfilled:  # opening on top of a position not closed would hold the wrong size
                m.skipped = f"close refused ({unfilled[0].reason}): not opened"
                continue
            for leg in opening:
                refused += self._send(m, leg)
        return refused

    def _send(self, market: MarketExecution, leg: Leg) -> list[str]:
        request = OrderRequest(
            leg.client_order_id, market.symbol, leg.side, leg.quantity, leg.reduce_only
        )
        result = self._place(request, leg.leg, None, None)
        market.orders.append(result)
        if result.status == FILLED:
            return []
        return [f"{market.symbol} {leg.leg} refused: {result.reason}"]

    # -- the record -----------------------------------------------------------------------
    def _finish(
        self, done: PortfolioExecution, action: str, note: str, *, keep: bool = True
    ) -> PortfolioExecution:
        """Complete the result (each market's quantity now; why an ordered market was not
        traded) and, with `keep`, record the candle as executed."""
        done.action, done.note = action, note
        with self.db.connection() as conn:
            book = trading.book(conn, self.account)
        for m in done.markets:
            m.after = book[m.symbol].quantity if m.symbol in book else 0.0
            if m.skipped is None and not m.legs:
                m.skipped = action if m.ordered else NOT_ORDERED
        if keep:
            with self.db.connection() as conn:
                record.finish(
                    conn, self.account, done.candle_ms, self.timeframe, action, done.to_json()
                )
        log.info("portfolio %s candle %d: %s %s", self.account, done.candle_ms, action, note)
        return done
