"""The paper broker: an exchange account simulated in PostgreSQL.

It fills market orders at the next price (the feed's last price) made worse by the slippage,
charges the taker fee on the fill's notional, refuses orders that need more margin than the
equity holds, honours reduce-only, and remembers every client order id, so a retried order
is answered from the record instead of filled again. Its wallet and positions live in their
own tables (`paper_*`, kept by `pipeline.store.paper`), apart from the position manager's
book, so reconciling them checks something real.

Its market rules (amount step, minimum notional) are the exchange's when its price feed reads
a ccxt exchange (`ExchangePriceFeed`), else the ones given (default: no step, no minimum).
It reports them for the managers to obey and does not enforce them itself, so a paper fill is
the quantity asked, as the backtest's is.

Resting exits (reduce-only stops and take-profits) wait in `paper_orders` with status 'open'.
Before anything reads or changes the account, each is checked on the 1h candles that closed
since it was last checked (read from the feed's exchange), by the backtest's rule
(`pipeline.backtest.triggers`): a fill then lands as the exchange would have made it, at the
trigger candle's time, even when nothing asked for hours. One that finds no position left to
reduce expires.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from pipeline.backtest.triggers import Candle, closed_candles, fill_price, in_fill_order
from pipeline.data.timeframes import timeframe_ms
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    FILLED,
    OPEN,
    REJECTED,
    BrokerPosition,
    ExitOrder,
    MarketRules,
    OpenOrder,
    OrderRequest,
    OrderResult,
)
from pipeline.execution.prices import PriceFeed
from pipeline.store import paper
from pipeline.store.database import Database
from pipeline.store.trading import moved

MARGIN_MODES = ("isolated", "cross")
# The candles resting exits are checked on: the finest the exchange's history is kept at.
TRIGGER_TIMEFRAME = "1h"
TRIGGER_STEP_MS = timeframe_ms(TRIGGER_TIMEFRAME)


class PaperBroker:
    def __init__(
        self,
        db: Database,
        feed: PriceFeed,
        account: str = "paper",
        fee: float = 0.0005,
        slippage_bps: float = 0.0,
        initial_balance: float = 10_000.0,
        rules: MarketRules | Mapping[str, MarketRules] | None = None,
    ):
        """`rules`: one `MarketRules` for every market or one per symbol (a symbol left out
        has none); when None, the feed's exchange's rules if it has an exchange."""
        if fee < 0 or slippage_bps < 0:
            raise ValueError("fee and slippage are costs: they cannot be negative")
        if initial_balance <= 0:
            raise ValueError("the paper account needs a positive starting balance")
        self.db, self.feed, self.name = db, feed, account
        self.fee, self.slippage = fee, slippage_bps / 10_000.0
        self.rules = rules
        with db.connection() as conn, conn.transaction():
            paper.open_account(conn, account, initial_balance)

    def __repr__(self) -> str:
        return f"PaperBroker(account={self.name!r}, fee={self.fee}, slippage={self.slippage})"

    # -- reading ---------------------------------------------------------------------------
    def price(self, symbol: str) -> float:
        return self.feed.quote(symbol)[0]

    def balance(self) -> float:
        with self.db.connection() as conn:
            balance = paper.balance(conn, self.name)
            conn.commit()
        return balance

    def positions(self) -> dict[str, BrokerPosition]:
        self.watch_exits()
        with self.db.connection() as conn:
            rows = paper.open_positions(conn, self.name)
            conn.commit()
        return {s: BrokerPosition(s, float(q), float(e)) for s, q, e in rows}

    def equity(self) -> float:
        held = self.positions()
        unrealised = sum(p.quantity * (self.price(s) - p.entry_price) for s, p in held.items())
        return self.balance() + unrealised

    def open_orders(self, symbol: str | None = None, conditional: bool = True) -> list[OpenOrder]:
        """The resting exits still waiting (market orders never rest)."""
        if not conditional:
            return []
        self.watch_exits(symbol)
        with self.db.connection() as conn:
            resting = paper.resting_orders(conn, self.name, symbol)
            conn.commit()
        return [
            OpenOrder(o.client_order_id, o.client_order_id, o.symbol, o.side, o.quantity)
            for o in resting
        ]

    def market_rules(self, symbol: str) -> MarketRules:
        if isinstance(self.rules, MarketRules):
            return self.rules
        if self.rules is not None:
            return self.rules.get(symbol, MarketRules())
        from_exchange = getattr(self.feed, "market_rules", None)
        return from_exchange(symbol) if from_exchange is not None else MarketRules()

    # -- trading ---------------------------------------------------------------------------
    def configure_market(self, symbol: str, leverage: int, margin_mode: str) -> None:
        if not 1 <= leverage <= 125:
            raise ValueError(f"leverage must be 1–125, got {leverage}")
        if margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin mode must be one of {MARGIN_MODES}, got {margin_mode!r}")
        with self.db.connection() as conn, conn.transaction():
            paper.configure_market(conn, self.name, symbol, leverage, margin_mode)

    def place(self, order: OrderRequest) -> OrderResult:
        self.watch_exits(order.symbol)
        with self.db.connection() as conn, conn.transaction():
            # One order at a time per account: the wallet row is the lock.
            paper.lock_account(conn, self.name)
            known = self._recorded(conn, order.client_order_id)
            if known is not None:
                return known
            price, at_ms = self.feed.quote(order.symbol)
            result = self._fill(conn, order, price, at_ms)
            paper.record_order(
                conn,
                account=self.name,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=result.filled or order.quantity,
                status=result.status,
                price=result.average_price,
                fee=result.fee,
                reason=result.reason,
                at_ms=at_ms,
            )
        return result

    def lookup(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """What became of the order with this client order id; None if it was never placed."""
        self.watch_exits(symbol)
        with self.db.connection() as conn:
            found = self._recorded(conn, client_order_id)
            conn.commit()
        return found

    def _recorded(self, conn: psycopg.Connection, client_order_id: str) -> OrderResult | None:
        known = paper.recorded_order(conn, self.name, client_order_id)
        if known is None:
            return None
        filled = known.status == FILLED
        resting = known.status in (OPEN, CANCELLED, "expired")
        return OrderResult(
            client_order_id=client_order_id,
            exchange_order_id=client_order_id if filled or resting else None,
            status=CANCELLED if known.status == "expired" else known.status,
            filled=known.quantity if filled else 0.0,
            average_price=known.price,
            fee=known.fee,
            timestamp_ms=known.at_ms,
            reason=known.reason,
        )

    def _fill(
        self, conn: psycopg.Connection, order: OrderRequest, price: float, at_ms: int
    ) -> OrderResult:
        def rejected(reason: str) -> OrderResult:
            return OrderResult(order.client_order_id, None, REJECTED, 0.0, None, 0.0, at_ms, reason)

        held = paper.position(conn, self.name, order.symbol)
        quantity, entry, leverage = (
            (held.quantity, held.entry_price, held.leverage) if held else (0.0, None, 1)
        )
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
        paper.add_to_balance(conn, self.name, realised - fee)
        paper.set_position(conn, self.name, order.symbol, after, after_entry)
        return OrderResult(
            order.client_order_id, order.client_order_id, FILLED, size, fill, fee, at_ms
        )

    def _equity_in(self, conn: psycopg.Connection) -> float:
        balance = paper.balance(conn, self.name)
        held = paper.open_positions(conn, self.name)
        return balance + sum(q * (self.price(s) - e) for s, q, e in held)

    def _margin_needed(
        self, conn: psycopg.Connection, symbol: str, after: float, price: float, leverage: int
    ) -> float:
        """Initial margin of every position once this order is filled."""
        others = paper.other_positions(conn, self.name, symbol)
        need = abs(after) * price / leverage
        return need + sum(abs(q) * self.price(s) / lev for s, q, lev in others)

    # -- resting exits -----------------------------------------------------------------------
    def place_exit(self, order: ExitOrder) -> OrderResult:
        """Rest a reduce-only stop or take-profit; it is first checked on the candle in
        progress now (the replay's price inside a candle is its open, where the entry
        filled)."""
        self._require_candles()
        now = self.feed.now_ms()  # type: ignore[attr-defined]
        self.watch_exits(order.symbol)
        with self.db.connection() as conn, conn.transaction():
            paper.lock_account(conn, self.name)
            known = self._recorded(conn, order.client_order_id)
            if known is not None:
                return known
            paper.record_resting(
                conn,
                account=self.name,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                kind=order.kind,
                trigger_price=order.trigger_price,
                watched_from_ms=now // TRIGGER_STEP_MS * TRIGGER_STEP_MS,
                at_ms=now,
            )
        return OrderResult(order.client_order_id, order.client_order_id, OPEN, 0.0, None, 0.0, now)

    def cancel_exit(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel a resting exit; one that filled or expired first says so."""
        self.watch_exits(symbol)
        now = self.feed.now_ms()  # type: ignore[attr-defined]
        with self.db.connection() as conn, conn.transaction():
            paper.lock_account(conn, self.name)
            paper.close_resting(conn, self.name, client_order_id, status=CANCELLED, at_ms=now)
            known = self._recorded(conn, client_order_id)
        if known is None:
            return OrderResult(
                client_order_id, None, REJECTED, 0.0, None, 0.0, now, "no such order"
            )
        return known

    def watch_exits(self, symbol: str | None = None) -> int:
        """Check every open resting exit (of `symbol`, or all) on the candles closed since it
        was last checked; fill or expire those touched. Returns the fills made."""
        with self.db.connection() as conn:
            resting = paper.resting_orders(conn, self.name, symbol)
            conn.commit()
        if not resting:
            return 0
        self._require_candles()
        now = self.feed.now_ms()  # type: ignore[attr-defined]
        fills = 0
        for market in dict.fromkeys(o.symbol for o in resting):
            fills += self._watch_market(market, now)
        return fills

    def _watch_market(self, symbol: str, now: int) -> int:
        fills = 0
        while True:
            with self.db.connection() as conn:
                resting = paper.resting_orders(conn, self.name, symbol)
                conn.commit()
            if not resting:
                return fills
            since = min(o.watched_from_ms for o in resting)
            if since + TRIGGER_STEP_MS > now:
                return fills  # no candle has closed since the last check
            rows = self.feed.candles(symbol, TRIGGER_TIMEFRAME, since)  # type: ignore[attr-defined]
            candles = closed_candles(rows, since, now, TRIGGER_STEP_MS)
            if not candles:
                return fills
            with self.db.connection() as conn, conn.transaction():
                paper.lock_account(conn, self.name)
                for candle in candles:
                    fills += self._trigger(conn, symbol, candle)
                    paper.watched_until(conn, self.name, symbol, candle.open_ms + TRIGGER_STEP_MS)

    def _trigger(self, conn: psycopg.Connection, symbol: str, candle: Candle) -> int:
        """Fill (or expire) the market's resting exits that `candle` touched, stops first."""
        fills = 0
        waiting = [
            o
            for o in paper.resting_orders(conn, self.name, symbol)
            if o.watched_from_ms <= candle.open_ms
        ]
        at_ms = candle.open_ms + TRIGGER_STEP_MS - 1  # inside the candle, known at its close
        for order in in_fill_order(waiting, lambda o: o.kind):
            level = fill_price(order.kind, order.side, order.trigger_price, candle)
            if level is None:
                continue
            request = OrderRequest(order.client_order_id, symbol, order.side, order.quantity, True)
            result = self._fill(conn, request, level, at_ms)
            if result.status == FILLED:
                fills += 1
                paper.close_resting(
                    conn,
                    self.name,
                    order.client_order_id,
                    status=FILLED,
                    quantity=result.filled,
                    price=result.average_price,
                    fee=result.fee,
                    at_ms=at_ms,
                )
            else:  # nothing left to reduce: the exchanges expire it
                paper.close_resting(
                    conn,
                    self.name,
                    order.client_order_id,
                    status="expired",
                    reason=result.reason,
                    at_ms=at_ms,
                )
        return fills

    def _require_candles(self) -> None:
        if not (hasattr(self.feed, "candles") and hasattr(self.feed, "now_ms")):
            raise TypeError(
                "resting exits need a price feed with the exchange's candles and clock "
                "(ExchangePriceFeed): this one has only prices"
            )
