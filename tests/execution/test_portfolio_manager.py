"""`PortfolioManager` against real PostgreSQL: the paper broker on a price feed the test sets,
the real ccxt client over HTTP to the replay exchange, and fill-by-fill parity with the
portfolio backtest on decisions of the portfolio layer."""

from __future__ import annotations

import dataclasses
import math
import re
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from types import SimpleNamespace

import ccxt
import numpy as np
import pandas as pd
import pytest

from pipeline.backtest.panel import Panel
from pipeline.backtest.portfolio import PortfolioCosts, run_portfolio_backtest
from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.client import make_exchange
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import BUY, FILLED, SELL, BrokerError, MarketRules, OrderRequest
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.execution.market_rules import amount_step, round_down
from pipeline.execution.orders import client_order_id
from pipeline.execution.paper import PaperBroker
from pipeline.execution.portfolio_manager import (
    MarketTarget,
    PortfolioExecution,
    PortfolioManager,
)
from pipeline.execution.portfolio_plan import leverage_for
from pipeline.execution.prices import ExchangePriceFeed
from pipeline.execution.risk import RiskConfig
from pipeline.portfolio import PortfolioConfig, decide
from pipeline.replay.server import ReplayServer
from pipeline.store import trading
from tests.helpers.replay import account, frozen_replay

BTC, ETH, SOL, XRP = (f"{b}/USDT:USDT" for b in ("BTC", "ETH", "SOL", "XRP"))
EXCHANGE, H = "binanceusdm", 3_600_000
C0 = parse_date_ms("2023-03-01T10:00:00Z")
FEE = 0.0005
PRICES = {BTC: 20_000.0, ETH: 1_500.0, SOL: 20.0}
RULES = MarketRules(amount_step=0.001, min_notional=5.0)


def lot(quantity: float, step: str = "0.001") -> float:
    """`quantity` rounded down to `step`, the way ccxt's amount_to_precision truncates."""
    units = (Decimal(repr(float(quantity))) / Decimal(step)).to_integral_value(ROUND_DOWN)
    return float(units * Decimal(step))


class Feed:
    """A price feed whose prices and clock the test sets."""

    def __init__(self, prices: dict[str, float]):
        self.prices = dict(prices)
        self.at_ms = C0 + H + 60_000

    def quote(self, symbol: str) -> tuple[float, int]:
        return self.prices[symbol], self.at_ms


@pytest.fixture()
def feed() -> Feed:
    return Feed(PRICES)


@pytest.fixture()
def paper(db, feed) -> PaperBroker:
    return PaperBroker(db, feed, fee=FEE, rules=RULES)


def manager_for(db, broker, **risk) -> PortfolioManager:
    return PortfolioManager(db, broker, RiskConfig(**risk), EXCHANGE, "1h", H)


def targets(weights: dict[str, float], ordered: set[str] | None = None) -> list[MarketTarget]:
    return [MarketTarget(s, w, ordered is None or s in ordered) for s, w in weights.items()]


def step(
    manager: PortfolioManager,
    feed: Feed,
    k: int,
    weights: dict[str, float],
    ordered: set[str] | None = None,
    prices: dict[str, float] | None = None,
) -> PortfolioExecution:
    """The decision at candle C0 + k·H, executed a minute into the next candle."""
    feed.prices.update(prices or {})
    feed.at_ms = C0 + (k + 1) * H + 60_000
    return manager.execute(C0 + k * H, targets(weights, ordered), now_ms=feed.at_ms)


def rows(db, sql: str, *params) -> list[tuple]:
    with db.connection() as conn:
        found = conn.execute(sql, params).fetchall()
        conn.commit()
    return found


ORDERS = """SELECT client_order_id, symbol, side, quantity, reduce_only, purpose, status
            FROM orders ORDER BY id"""


def by_symbol(done: PortfolioExecution):
    return {m.symbol: m for m in done.markets}


def assert_book_is_the_broker(db, broker) -> None:
    with db.connection() as conn:
        ours = {s: p.quantity for s, p in trading.book(conn, broker.name).items() if p.quantity}
    theirs = {s: p.quantity for s, p in broker.positions().items()}
    assert ours == pytest.approx(theirs, rel=1e-12)


# -- pure rules -----------------------------------------------------------------------------
def test_round_down_and_the_two_ccxt_precision_modes() -> None:
    assert round_down(0.3, 0.001) == 0.3  # not 0.299: decimal, not float division
    assert round_down(0.0129999, 0.001) == 0.012
    assert round_down(1.7, 0.5) == 1.5
    assert round_down(0.123456789, 0.0) == 0.123456789
    tick = SimpleNamespace(precisionMode=ccxt.TICK_SIZE)
    places = SimpleNamespace(precisionMode=ccxt.DECIMAL_PLACES)
    digits = SimpleNamespace(precisionMode=ccxt.SIGNIFICANT_DIGITS)
    assert amount_step(tick, {"precision": {"amount": 0.01}}) == 0.01
    assert amount_step(places, {"precision": {"amount": 3}}) == 0.001
    assert amount_step(places, {"precision": {"amount": 0}}) == 1.0
    assert amount_step(digits, {"precision": {"amount": 4}}) == 0.0
    assert amount_step(tick, {"precision": {}}) == 0.0


def test_leverage_leaves_room_for_the_fees_and_honours_the_risk_floor() -> None:
    assert [leverage_for(g) for g in (0.0, 0.5, 0.9, 1.0, 1.5, 2.0, 2.5)] == [1, 1, 1, 2, 2, 3, 3]
    assert leverage_for(1.0, floor=5) == 5
    assert leverage_for(500.0) == 125


# -- the paper broker -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weights", "leverage"),
    [
        ({BTC: 0.5, ETH: -0.3, SOL: 0.2}, 2),  # gross 1: leverage 1 would refuse the last order
        ({BTC: 1.2, ETH: -0.9, SOL: 0.4}, 3),  # gross 2.5
    ],
)
def test_from_flat_to_three_weights(db, paper, feed, weights, leverage) -> None:
    manager = manager_for(db, paper)
    done = step(manager, feed, 0, weights)
    assert (done.action, done.equity_before, done.leverage) == ("rebalanced", 10_000.0, leverage)
    fees = 0.0
    for symbol, w in weights.items():
        market = by_symbol(done)[symbol]
        p = PRICES[symbol]
        wanted = lot(abs(w) * 10_000 / p)
        assert market.target_quantity == pytest.approx(w * 10_000 / p)
        assert market.after == math.copysign(wanted, w) == market.delta
        (order,) = market.orders
        assert (order.status, order.filled, order.average_price) == (FILLED, wanted, p)
        assert order.fee == pytest.approx(FEE * wanted * p)  # the backtest's fee on |Δ| × p
        assert order.client_order_id == client_order_id("paper", "portfolio", C0, symbol, "open")
        fees += order.fee
    assert done.equity_after == pytest.approx(10_000 - fees)
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in rows(db, ORDERS)] == [
        (s, BUY if w > 0 else SELL, False, "open", "filled") for s, w in weights.items()
    ]
    settings = rows(db, "SELECT symbol, leverage, margin_mode FROM paper_positions ORDER BY 1")
    assert settings == [(s, leverage, "isolated") for s in sorted(weights)]
    assert rows(db, "SELECT equity FROM equity") == [(pytest.approx(10_000 - fees),)]
    recorded = rows(db, "SELECT status, action, result FROM portfolio_executions")
    assert recorded == [("done", "rebalanced", done.to_json())]
    assert_book_is_the_broker(db, paper)


def test_a_market_not_ordered_is_left_alone_whatever_its_weight(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    step(manager, feed, 0, {BTC: 0.5, ETH: -0.3, SOL: 0.2})
    eth = paper.positions()[ETH].quantity
    done = step(manager, feed, 1, {BTC: 0.4, ETH: -0.5, SOL: 0.2}, {BTC}, {ETH: 1_600.0})
    market = by_symbol(done)[ETH]
    assert (market.before, market.after, market.orders) == (eth, eth, [])
    assert (market.skipped, market.target_quantity) == ("not ordered", None)
    assert by_symbol(done)[SOL].skipped == "not ordered"
    (order,) = by_symbol(done)[BTC].orders
    assert order.client_order_id == client_order_id("paper", "portfolio", C0 + H, BTC, "reduce")
    assert {r[1] for r in rows(db, ORDERS)[3:]} == {BTC}


def test_long_to_short_is_a_reduce_only_close_then_an_open(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    step(manager, feed, 0, {BTC: 0.5})
    held = paper.positions()[BTC].quantity
    done = step(manager, feed, 1, {BTC: -0.4}, prices={BTC: 21_000.0})
    v = done.equity_before
    assert v == pytest.approx(10_000 - FEE * held * 20_000 + held * 1_000)
    short = lot(0.4 * v / 21_000)
    market = by_symbol(done)[BTC]
    assert [(o.status, o.filled, o.average_price) for o in market.orders] == [
        (FILLED, held, 21_000.0),
        (FILLED, short, 21_000.0),
    ]
    assert market.after == -short and market.delta == pytest.approx(-held - short)
    # Two fills, one fee: fee × |held| × p + fee × |q*| × p = fee × |Δ| × p.
    assert sum(o.fee for o in market.orders) == pytest.approx(FEE * abs(market.delta) * 21_000)
    assert [(r[2], r[3], r[4], r[5]) for r in rows(db, ORDERS)[1:]] == [
        (SELL, held, True, "close"),
        (SELL, short, False, "open"),
    ]


def test_a_reduction_is_one_reduce_only_order(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    step(manager, feed, 0, {ETH: -0.3})
    done = step(manager, feed, 1, {ETH: -0.1})
    market = by_symbol(done)[ETH]
    v = done.equity_before
    size = lot(2.0 - 0.1 * v / 1_500)
    assert [(o.status, o.filled) for o in market.orders] == [(FILLED, size)]
    assert market.after == pytest.approx(-2.0 + size)
    assert rows(db, ORDERS)[-1][2:6] == (BUY, size, True, "reduce")


def test_below_the_minimum_notional_is_skipped_but_a_close_to_zero_is_not(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    step(manager, feed, 0, {SOL: 0.0006})  # 0.3 SOL, 6 USDT: above the 5 USDT minimum
    held = paper.positions()[SOL].quantity
    assert held == lot(0.0006 * 10_000 / 20) and held >= 0.299
    done = step(manager, feed, 1, {SOL: 0.0009})  # Δ 0.15 SOL = 3 USDT
    market = by_symbol(done)[SOL]
    assert (done.action, market.orders, market.delta, market.after) == ("none", [], 0.0, held)
    assert re.fullmatch(r"order notional 3\.0\d is below the market's minimum 5", market.skipped)
    done = step(manager, feed, 2, {SOL: 0.0}, prices={SOL: 10.0})  # now worth 3 USDT
    market = by_symbol(done)[SOL]
    assert [(o.status, o.filled, o.average_price) for o in market.orders] == [(FILLED, held, 10.0)]
    assert (market.skipped, market.after, paper.positions()) == (None, 0.0, {})
    assert rows(db, ORDERS)[-1][2:6] == (SELL, held, True, "close")


def test_an_order_below_one_step_and_a_capped_target_say_so(db, paper, feed) -> None:
    manager = manager_for(db, paper, max_notional=3_000.0)
    done = step(manager, feed, 0, {BTC: 0.5, ETH: 0.00001})
    btc, eth = by_symbol(done)[BTC], by_symbol(done)[ETH]
    assert btc.note == "capped at max_notional 3000"
    assert btc.target_quantity == 3_000 / 20_000 and btc.after == 0.15
    assert eth.skipped == "Δ 6.66667e-05 is below one amount step 0.001" and eth.orders == []


def test_a_retried_run_of_the_same_candle_sends_nothing_new(db, feed) -> None:
    """The process fails after the first order; the rerun executes the recorded plan: the
    filled order is answered from the record (not sent again), the others are sent once,
    under the same client order ids. A third run of the candle is stale."""

    class FailsOnce(PaperBroker):
        failed = False

        def place(self, order: OrderRequest):
            if self.failed is False and order.symbol == ETH:
                self.failed = True
                raise BrokerError("network down past the retry bound")
            return super().place(order)

    broker = FailsOnce(db, feed, fee=FEE, rules=RULES)
    manager = manager_for(db, broker)
    weights = {BTC: 0.5, ETH: -0.3, SOL: 0.2}
    with pytest.raises(BrokerError, match="network down"):
        step(manager, feed, 0, weights)
    first = rows(db, ORDERS)
    assert [(r[1], r[6]) for r in first] == [(BTC, "filled"), (ETH, "unknown")]
    feed.prices[BTC] = 30_000.0  # a new price, a new value: the plan stands
    done = step(manager, feed, 0, weights)
    assert done.action == "rebalanced" and done.note == "resumed the plan an earlier run recorded"
    assert done.equity_before == 10_000.0
    assert by_symbol(done)[SOL].after == lot(0.2 * 10_000 / 20)
    ids = [client_order_id("paper", "portfolio", C0, s, "open") for s in weights]
    assert [r[0] for r in rows(db, ORDERS)] == ids
    assert [r[6] for r in rows(db, ORDERS)] == ["filled"] * 3
    assert rows(db, "SELECT client_order_id FROM paper_orders ORDER BY 1") == sorted(
        (i,) for i in ids
    )
    again = step(manager, feed, 0, weights)
    assert (again.action, [m.orders for m in again.markets]) == ("stale", [[], [], []])
    assert len(rows(db, "SELECT * FROM paper_orders")) == 3
    assert_book_is_the_broker(db, broker)


def test_the_kill_switch_flattens_everything_and_halts(db, paper, feed) -> None:
    step(manager_for(db, paper), feed, 0, {BTC: 0.5, ETH: -0.3})
    killed = manager_for(db, paper, kill_switch=True)
    done = step(killed, feed, 1, {BTC: 0.6, ETH: -0.3})
    assert done.action == "kill switch" and "kill switch on" in done.note
    assert sorted((o.status, o.client_order_id) for o in done.orders) == sorted(
        (FILLED, client_order_id("paper", s, "flatten", C0 + 2 * H)) for s in (BTC, ETH)
    )
    assert paper.positions() == {} and [m.after for m in done.markets] == [0.0, 0.0]
    assert {r[4] for r in rows(db, ORDERS) if r[5] == "flatten"} == {True}
    with db.connection() as conn:
        assert trading.trading_state(conn, "paper").halted
    later = step(killed, feed, 2, {BTC: 0.6})
    assert (later.action, later.orders, paper.positions()) == ("kill switch", [], {})


def test_a_book_that_disagrees_with_the_broker_trades_nothing(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    step(manager, feed, 0, {BTC: 0.5})
    paper.place(OrderRequest("behind-the-back", ETH, BUY, 1.0))
    count = len(rows(db, "SELECT * FROM paper_orders"))
    done = step(manager, feed, 1, {BTC: 0.2, ETH: 0.1})
    assert done.action == "mismatch" and "run `signals reconcile`" in done.note
    assert [m.orders for m in done.markets] == [[], []]
    assert len(rows(db, "SELECT * FROM paper_orders")) == count
    assert manager.adopt()  # the operator adopts: the same candle then trades
    assert step(manager, feed, 1, {BTC: 0.2, ETH: 0.1}).action == "rebalanced"


def test_a_late_candle_is_recorded_not_traded(db, paper, feed) -> None:
    manager = manager_for(db, paper)
    late = manager.execute(C0, targets({BTC: 0.5}), now_ms=C0 + 2 * H)
    assert (late.action, late.markets[0].orders, paper.positions()) == ("late", [], {})
    assert late.markets[0].skipped == "late"
    assert step(manager, feed, 0, {BTC: 0.5}).action == "stale"
    assert step(manager, feed, -1, {BTC: 0.5}).action == "stale"  # an older candle too
    assert rows(db, ORDERS) == []


# -- parity with the portfolio backtest ---------------------------------------------------
def synthetic_panel(n: int = 28, m: int = 3, seed: int = 7) -> Panel:
    """Random walks with gaps between a close and the next open (so V is not the close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0)) * [1, 3, 0.2]
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.003, (n, m)))
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    timestamps = C0 + H * np.arange(n)
    markets = ("AAA/USDT:USDT", "BBB/USDT:USDT", "CCC/USDT:USDT")
    return Panel(timestamps, markets, open_, high, low, close, "1h")


def test_paper_execution_of_layer_decisions_is_the_portfolio_backtest(db) -> None:
    panel = synthetic_panel()
    n, m = panel.shape
    rng = np.random.default_rng(11)
    scores = np.clip(rng.normal(0, 0.6, (n, m)), -1, 1)
    vol = rng.uniform(0.3, 0.9, (n, m))
    cfg = PortfolioConfig(selection="all", band=0.03, min_hold=2, market_cap=0.9)
    decisions = decide(scores, vol, cfg)
    assert decisions.orders[:-1].sum() >= 20 and not decisions.orders[:-1].all()
    costs = PortfolioCosts(fee=FEE, slippage_bps=0.0, funding_rate=0.0)
    result = run_portfolio_backtest(panel, decisions.targets, decisions.orders, costs)
    assert not result.metrics["liquidated"]

    clock = {"k": 0}

    class NextOpen:
        def quote(self, symbol: str) -> tuple[float, int]:
            k = clock["k"]
            return float(panel.open[k, panel.markets.index(symbol)]), int(panel.timestamps[k])

    scale = 10_000.0
    broker = PaperBroker(db, NextOpen(), fee=FEE, initial_balance=scale)
    manager = manager_for(db, broker, daily_loss_limit=1.0, max_notional=1e12)
    values = []
    for t in range(n - 1):  # the last candle's decisions have no next open
        clock["k"] = t + 1
        done = manager.execute(
            int(panel.timestamps[t]),
            [
                MarketTarget(s, decisions.targets[t, j], decisions.orders[t, j])
                for j, s in enumerate(panel.markets)
            ],
            now_ms=int(panel.timestamps[t + 1]) + 60_000,
        )
        assert done.action in ("rebalanced", "none"), done.note
        values.append(done.equity_before / scale)

    live = pd.DataFrame(
        rows(
            db,
            """SELECT (extract(epoch FROM f.filled_at) * 1000)::bigint, f.symbol,
                      CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END, f.price,
                      f.fee
               FROM fills f ORDER BY f.order_id""",
        ),
        columns=["at", "market", "quantity", "price", "fee"],
    )
    # A crossing is two fills (close, open) at one price: summed, the backtest's one fill.
    fill_count = len(live)
    live = live.groupby(["at", "market"], sort=True).agg(
        quantity=("quantity", "sum"), price=("price", "first"), fee=("fee", "sum")
    )
    fills = result.fills
    expected = (
        pd.DataFrame(
            {
                "at": fills["time"].astype("int64") // 1_000_000,
                "market": fills["market"].astype(str),
                "quantity": fills["quantity"] * scale,
                "price": fills["price"],
                "fee": fills["fee"] * scale,
            }
        )
        .set_index(["at", "market"])
        .sort_index()
    )
    crossed = np.sign(fills["held"] - fills["quantity"]) * np.sign(fills["held"]) < 0
    assert len(expected) >= 20 and crossed.any()  # long → short (or back) is in the sample
    assert fill_count > len(live)  # ...as a close and an open, live
    assert list(live.index) == list(expected.index)
    for column in ("quantity", "price", "fee"):
        np.testing.assert_allclose(live[column], expected[column], rtol=1e-9, atol=0)

    # The value at each open, before its orders: cash + Σ qty × open from the backtest's fills.
    cash, qty = 1.0, np.zeros(m)
    by_candle = fills.assign(k=(fills["time"].astype("int64") // 1_000_000 - C0) // H)
    want = []
    for k in range(1, n):
        want.append(cash + qty @ panel.open[k])
        for _, f in by_candle[by_candle["k"] == k].iterrows():
            j = panel.markets.index(str(f["market"]))
            cash -= f["quantity"] * f["price"] + f["fee"]
            qty[j] = f["held"]
    np.testing.assert_allclose(values, want, rtol=1e-9, atol=0)
    np.testing.assert_allclose(
        broker.equity() / scale, cash + qty @ panel.open[n - 1], rtol=1e-9, atol=0
    )


# -- the exchange through ccxt --------------------------------------------------------------
KEY, SECRET = "portfolio-test-key-5b21", "portfolio-test-secret-90ad"
FAST = RetryPolicy(attempts=4, backoff_s=0.01)
MARKETS = {BTC: "BTCUSDT", ETH: "ETHUSDT", SOL: "SOLUSDT", XRP: "XRPUSDT"}


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, C0 + H + 60_000, KEY, SECRET) as server:
        rules = server.exchange.market.rules  # coarser BTC lots, a high XRP minimum
        rules["BTCUSDT"] = dataclasses.replace(rules["BTCUSDT"], step=Decimal("0.01"))
        rules["XRPUSDT"] = dataclasses.replace(rules["XRPUSDT"], min_notional=500.0)
        yield server


def make_broker(server: ReplayServer) -> CcxtBroker:
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    broker = CcxtBroker.from_env(api_url=server.url, timeout_ms=1000, retry=FAST, environ=env)
    broker.exchange.enableRateLimit = False
    return broker


def opens_at(sample_dir: Path, candle_ms: int) -> dict[str, float]:
    out = {}
    for symbol, market in MARKETS.items():
        frame = pd.read_csv(sample_dir / f"{market}.csv.gz")
        out[symbol] = float(frame.loc[frame["timestamp"] == candle_ms, "open"].iloc[0])
    return out


def test_the_exchange_rules_through_ccxt_and_the_replay_exchange(db, replay, sample_dir) -> None:
    broker = make_broker(replay)
    assert broker.market_rules(BTC) == MarketRules(0.01, 5.0)
    assert broker.market_rules(XRP) == MarketRules(0.001, 500.0)
    public = make_exchange(EXCHANGE, replay.url, 1000)
    on_paper = PaperBroker(db, ExchangePriceFeed(public), account="paper-replay")
    assert on_paper.market_rules(XRP) == MarketRules(0.001, 500.0)  # the feed's exchange's
    assert PaperBroker(db, Feed(PRICES), account="plain").market_rules(BTC) == MarketRules()

    manager = manager_for(db, broker, margin_mode="cross")
    weights = {BTC: 0.45, ETH: -0.35, SOL: 0.1, XRP: 0.02}  # XRP: 200 USDT < 500
    done = manager.execute(C0, targets(weights), now_ms=C0 + H + 60_000)
    p = opens_at(sample_dir, C0 + H)
    assert done.action == "rebalanced" and done.equity_before == 10_000.0
    steps = {BTC: "0.01", ETH: "0.001", SOL: "0.001"}
    for symbol, size in steps.items():
        (order,) = by_symbol(done)[symbol].orders
        wanted = lot(abs(weights[symbol]) * 10_000 / p[symbol], size)
        assert (order.status, order.filled, order.average_price) == (FILLED, wanted, p[symbol])
        assert order.fee == pytest.approx(FEE * wanted * p[symbol])
    assert by_symbol(done)[BTC].after == lot(0.45 * 10_000 / p[BTC], "0.01")
    xrp = by_symbol(done)[XRP]
    assert xrp.orders == [] and "below the market's minimum 500" in xrp.skipped
    state = account(replay)
    assert done.leverage == 1  # gross 0.9 once filled (XRP skipped): 0.99 → 1
    assert state["settings"]["BTCUSDT"] == {"leverage": 1, "margin_type": "CROSSED"}
    assert state["settings"]["XRPUSDT"]["leverage"] == 20  # the replay's default: not traded,
    # not held, so not configured
    assert_book_is_the_broker(db, broker)

    # Long → short (close + open) and a reduction, at the next open; SOL not ordered.
    replay.exchange.clock.set(C0 + 2 * H + 60_000, 1e-9)
    held = broker.positions()
    weights = {BTC: -0.3, ETH: -0.1, SOL: 0.5, XRP: 0.0}
    done = manager.execute(C0 + H, targets(weights, {BTC, ETH, XRP}), now_ms=C0 + 2 * H + 60_000)
    p2, v = opens_at(sample_dir, C0 + 2 * H), done.equity_before
    assert v == pytest.approx(done.equity_after + sum(o.fee for o in done_orders(done)))
    btc, eth = by_symbol(done)[BTC], by_symbol(done)[ETH]
    short = lot(0.3 * v / p2[BTC], "0.01")
    assert [(o.filled, o.average_price) for o in btc.orders] == [
        (held[BTC].quantity, p2[BTC]),
        (short, p2[BTC]),
    ]
    reduce = lot(abs(held[ETH].quantity) - 0.1 * v / p2[ETH])
    assert [o.filled for o in eth.orders] == [reduce]
    assert by_symbol(done)[SOL].orders == [] and by_symbol(done)[XRP].orders == []
    flags = {
        cid: broker.exchange.fetch_order(None, symbol, {"origClientOrderId": cid})["reduceOnly"]
        for cid, symbol, *_ in rows(db, ORDERS)[3:]
    }
    assert list(flags.values()) == [True, True, False]  # BTC close, ETH reduce, then BTC open
    assert account(replay)["placements"] == dict.fromkeys((r[0] for r in rows(db, ORDERS)), 1)
    assert manager.execute(C0 + H, targets(weights), now_ms=C0 + 2 * H + 60_000).action == ("stale")
    assert_book_is_the_broker(db, broker)


def done_orders(done: PortfolioExecution):
    return [o for m in done.markets for o in m.orders]
