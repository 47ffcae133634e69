"""`PaperBroker`: fills at the feed's price made worse by the slippage, the taker fee, realised
P&L, reduce-only, margin, idempotent client order ids; its state in real PostgreSQL."""

from __future__ import annotations

import pytest

from pipeline.execution.broker import BUY, FILLED, REJECTED, SELL, BrokerPosition, OrderRequest
from pipeline.execution.paper import PaperBroker

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FEE, SLIP = 0.0005, 0.001  # 10 bps
AT_MS = 1_677_664_800_000  # 2023-03-01T10:00Z


class Feed:
    """A price feed (the `PriceFeed` protocol) whose prices the test sets."""

    def __init__(self, **prices: float):
        self.prices = {BTC: prices.get("btc", 20_000.0), ETH: prices.get("eth", 1_500.0)}
        self.at_ms = AT_MS

    def quote(self, symbol: str) -> tuple[float, int]:
        return self.prices[symbol], self.at_ms


@pytest.fixture()
def feed() -> Feed:
    return Feed()


@pytest.fixture()
def paper(db, feed) -> PaperBroker:
    return PaperBroker(db, feed, fee=FEE, slippage_bps=SLIP * 10_000, initial_balance=10_000.0)


def paper_orders(db) -> int:
    with db.connection() as conn:
        (count,) = conn.execute("SELECT count(*) FROM paper_orders").fetchone()
        conn.commit()
    return int(count)


def test_a_buy_fills_above_and_a_sell_below_the_feed_price_paying_the_fee(paper, feed) -> None:
    buy = paper.place(OrderRequest("b-1", BTC, BUY, 0.1))
    fill = 20_000.0 * (1 + SLIP)
    assert (buy.status, buy.filled, buy.average_price) == (FILLED, 0.1, pytest.approx(fill))
    assert buy.fee == pytest.approx(FEE * 0.1 * fill)
    assert (buy.exchange_order_id, buy.timestamp_ms, buy.reason) == ("b-1", AT_MS, None)
    assert paper.balance() == pytest.approx(10_000 - buy.fee)
    assert paper.positions() == {BTC: BrokerPosition(BTC, 0.1, pytest.approx(fill))}

    sell = paper.place(OrderRequest("s-1", ETH, SELL, 2.0))
    eth_fill = 1_500.0 * (1 - SLIP)
    assert sell.average_price == pytest.approx(eth_fill)
    assert sell.fee == pytest.approx(FEE * 2.0 * eth_fill)
    assert paper.positions()[ETH].quantity == -2.0
    assert paper.balance() == pytest.approx(10_000 - buy.fee - sell.fee)


def test_equity_is_the_balance_plus_the_unrealised_pnl(paper, feed) -> None:
    assert paper.equity() == 10_000.0 and paper.price(BTC) == 20_000.0
    long = paper.place(OrderRequest("l", BTC, BUY, 0.2))
    short = paper.place(OrderRequest("s", ETH, SELL, 1.0))
    feed.prices.update({BTC: 21_000.0, ETH: 1_400.0})
    unrealised = 0.2 * (21_000.0 - long.average_price) - 1.0 * (1_400.0 - short.average_price)
    assert paper.balance() == pytest.approx(10_000 - long.fee - short.fee)
    assert paper.equity() == pytest.approx(paper.balance() + unrealised)
    assert unrealised > 0  # both sides gained


def test_realised_pnl_on_a_close_and_on_a_flip(paper, feed) -> None:
    opened = paper.place(OrderRequest("o", BTC, BUY, 0.3))
    feed.prices[BTC] = 22_000.0
    partial = paper.place(OrderRequest("p", BTC, SELL, 0.1))
    gain = 0.1 * (partial.average_price - opened.average_price)
    assert paper.positions()[BTC].quantity == pytest.approx(0.2)
    assert paper.positions()[BTC].entry_price == pytest.approx(opened.average_price)  # kept
    assert paper.balance() == pytest.approx(10_000 - opened.fee - partial.fee + gain)

    feed.prices[BTC] = 19_000.0
    flip = paper.place(OrderRequest("f", BTC, SELL, 0.5))  # closes 0.2, opens 0.3 short
    loss = 0.2 * (flip.average_price - opened.average_price)
    assert flip.filled == 0.5 and flip.fee == pytest.approx(FEE * 0.5 * flip.average_price)
    position = paper.positions()[BTC]
    assert position.quantity == pytest.approx(-0.3)
    assert position.entry_price == pytest.approx(flip.average_price)  # restarts on a flip
    assert paper.balance() == pytest.approx(
        10_000 - opened.fee - partial.fee - flip.fee + gain + loss
    )

    close = paper.place(OrderRequest("c", BTC, BUY, 0.3, reduce_only=True))
    assert paper.positions() == {}
    assert paper.balance() == pytest.approx(
        10_000
        - opened.fee
        - partial.fee
        - flip.fee
        - close.fee
        + gain
        + loss
        + 0.3 * (flip.average_price - close.average_price)
    )
    assert paper.equity() == pytest.approx(paper.balance())


def test_reduce_only_never_opens_never_flips_and_is_capped_at_the_position(paper) -> None:
    flat = paper.place(OrderRequest("r-0", BTC, SELL, 0.1, reduce_only=True))
    assert (flat.status, flat.filled, flat.exchange_order_id) == (REJECTED, 0.0, None)
    assert "reduce-only" in (flat.reason or "")
    paper.place(OrderRequest("o", BTC, BUY, 0.1))
    same_side = paper.place(OrderRequest("r-1", BTC, BUY, 0.1, reduce_only=True))
    assert same_side.status == REJECTED
    before = paper.balance()
    capped = paper.place(OrderRequest("r-2", BTC, SELL, 5.0, reduce_only=True))
    assert (capped.status, capped.filled) == (FILLED, 0.1)
    assert capped.fee == pytest.approx(FEE * 0.1 * capped.average_price)
    assert paper.positions() == {}
    assert paper.balance() == pytest.approx(
        before - capped.fee + 0.1 * (capped.average_price - 20_000.0 * (1 + SLIP))
    )


def test_insufficient_margin_is_rejected_and_changes_nothing(paper, feed) -> None:
    paper.place(OrderRequest("eth", ETH, BUY, 4.0))  # 6,000 of margin at 1x
    balance, positions = paper.balance(), paper.positions()
    big = paper.place(OrderRequest("big", BTC, BUY, 0.25))  # 5,000 more: too much
    assert (big.status, big.filled, big.fee) == (REJECTED, 0.0, 0.0)
    assert (big.reason or "").startswith("insufficient margin")
    assert paper.balance() == balance and paper.positions() == positions
    paper.configure_market(BTC, 5, "cross")  # 1,000 of margin at 5x: fits
    assert paper.place(OrderRequest("big-5x", BTC, BUY, 0.25)).status == FILLED
    assert paper.positions()[BTC].quantity == 0.25


def test_a_repeated_client_order_id_returns_the_recorded_result(paper, feed, db) -> None:
    first = paper.place(OrderRequest("same", BTC, BUY, 0.1))
    balance = paper.balance()
    feed.prices[BTC], feed.at_ms = 25_000.0, AT_MS + 3_600_000
    again = paper.place(OrderRequest("same", BTC, BUY, 0.1))
    assert again == first  # same fill, price, fee and time: not filled a second time
    assert paper.balance() == balance and paper.positions()[BTC].quantity == 0.1
    refused = paper.place(OrderRequest("nope", ETH, SELL, 0.1, reduce_only=True))
    assert paper.place(OrderRequest("nope", ETH, SELL, 0.1, reduce_only=True)) == refused
    assert paper_orders(db) == 2


def test_settings_and_costs_are_checked(db, feed) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        PaperBroker(db, feed, fee=-0.1)
    with pytest.raises(ValueError, match="positive starting balance"):
        PaperBroker(db, feed, initial_balance=0)
    paper = PaperBroker(db, feed, initial_balance=500.0)
    assert PaperBroker(db, feed, initial_balance=9.0).balance() == 500.0  # kept, not reset
    with pytest.raises(ValueError, match="leverage"):
        paper.configure_market(BTC, 0, "isolated")
    with pytest.raises(ValueError, match="margin mode"):
        paper.configure_market(BTC, 2, "portfolio")
    assert paper.open_orders() == [] and paper.open_orders(BTC) == []
