"""`CcxtBroker` through the real ccxt client, over HTTP, against the replay exchange: each
test once with ccxt's binanceusdm client and once with its bybit client (the replay speaks
both; Bybit's v5 answers, refusals and signatures are its own, the account is the same)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import (
    BUY,
    CANCELLED,
    FILLED,
    REJECTED,
    SELL,
    BrokerError,
    BrokerPosition,
    OrderRequest,
)
from pipeline.execution.ccxt_broker import BrokerAuthError, BrokerConfigError, CcxtBroker
from pipeline.replay.dialects import Dialect, dialect
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from tests.helpers.replay import account, candle_open, fresh, frozen_replay

KEY, SECRET = "broker-test-key-3f9a", "broker-test-secret-e27b"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = "2023-03-01T10:00:00Z"
FEE = 0.0005
FAST = RetryPolicy(attempts=4, backoff_s=0.01)


# How each exchange words the refusals the tests provoke.
WORDS = {
    "binanceusdm": {
        "bad_signature": "Signature for this request is not valid.",
        "margin": "Margin is insufficient.",
        "reduce_only": "ReduceOnly Order is rejected.",
    },
    "bybit": {
        "bad_signature": "error sign!",
        "margin": "ab not enough for new order",
        "reduce_only": "Reduce-only rule not satisfied",
    },
}


@pytest.fixture(scope="module")
def served(sample_dir: Path):
    """One replay exchange per module (loading the candles is what takes time)."""
    with frozen_replay(sample_dir, parse_date_ms(T0), KEY, SECRET) as server:
        yield server


@pytest.fixture(params=["binanceusdm", "bybit"])
def exchange_id(request) -> str:
    return request.param


@pytest.fixture()
def paths(exchange_id: str) -> Dialect:
    return dialect(exchange_id)


@pytest.fixture()
def words(exchange_id: str) -> dict[str, str]:
    return WORDS[exchange_id]


@pytest.fixture()
def replay(served: ReplayServer, exchange_id: str) -> ReplayServer:
    return fresh(served, parse_date_ms(T0))


def make_broker(
    server: ReplayServer, exchange_id: str, secret: str = SECRET, timeout_ms: int = 1000
) -> CcxtBroker:
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": secret}
    broker = CcxtBroker.from_env(
        exchange_id, api_url=server.url, timeout_ms=timeout_ms, retry=FAST, environ=env
    )
    broker.exchange.enableRateLimit = False  # ccxt paces by Binance's weights: 2 s a listing
    return broker


@pytest.fixture()
def broker(replay: ReplayServer, exchange_id: str) -> CcxtBroker:
    return make_broker(replay, exchange_id)


def test_credentials_come_from_the_environment(monkeypatch, replay, exchange_id) -> None:
    monkeypatch.delenv("SIGNALS_API_KEY", raising=False)
    monkeypatch.delenv("SIGNALS_API_SECRET", raising=False)
    with pytest.raises(BrokerConfigError, match="SIGNALS_API_KEY and SIGNALS_API_SECRET"):
        CcxtBroker.from_env(exchange_id, api_url=replay.url)
    monkeypatch.setenv("SIGNALS_API_KEY", KEY)
    monkeypatch.setenv("SIGNALS_API_SECRET", SECRET)
    broker = CcxtBroker.from_env(exchange_id, api_url=replay.url, timeout_ms=1000, retry=FAST)
    assert broker.equity() == 10_000
    assert KEY not in repr(broker) and SECRET not in str(broker)


def test_market_order_fills_at_the_next_open_with_the_exchange_fee(
    broker, replay, sample_dir
) -> None:
    price = candle_open(sample_dir, "BTCUSDT", T0)
    assert broker.price(BTC) == price
    result = broker.place(OrderRequest("sig-1", BTC, BUY, 0.0109))  # rounded down to the lot
    assert (result.status, result.filled, result.average_price) == (FILLED, 0.010, price)
    assert result.fee == pytest.approx(0.010 * price * FEE)
    assert result.exchange_order_id and result.timestamp_ms == parse_date_ms(T0)
    assert broker.positions() == {BTC: BrokerPosition(BTC, 0.010, price)}


def test_positions_and_equity_agree_with_hand_computed_values(broker, replay, sample_dir) -> None:
    broker.place(OrderRequest("a", BTC, BUY, 0.02))
    broker.place(OrderRequest("b", ETH, SELL, 0.5))
    btc_entry, eth_entry = (candle_open(sample_dir, m, T0) for m in ("BTCUSDT", "ETHUSDT"))
    later = "2023-03-01T15:00:00Z"
    replay.exchange.clock.set(parse_date_ms(later), 1e-9)
    btc_now, eth_now = (candle_open(sample_dir, m, later) for m in ("BTCUSDT", "ETHUSDT"))
    broker.place(OrderRequest("c", BTC, BUY, 0.01))  # adds at the new price
    fees = FEE * (0.02 * btc_entry + 0.5 * eth_entry + 0.01 * btc_now)
    btc_avg = (0.02 * btc_entry + 0.01 * btc_now) / 0.03
    unrealised = 0.03 * (btc_now - btc_avg) - 0.5 * (eth_now - eth_entry)
    positions = broker.positions()
    assert positions[BTC].quantity == pytest.approx(0.03)
    assert positions[BTC].entry_price == pytest.approx(btc_avg)
    assert positions[ETH] == BrokerPosition(ETH, -0.5, eth_entry)
    assert broker.equity() == pytest.approx(10_000 - fees + unrealised)
    broker.place(OrderRequest("d", ETH, BUY, 0.5, reduce_only=True))
    realised = -0.5 * (eth_now - eth_entry)
    fees += FEE * 0.5 * eth_now
    assert set(broker.positions()) == {BTC}
    assert account(replay)["wallet_balance"] == pytest.approx(10_000 - fees + realised)


@pytest.mark.parametrize("delay_s", [0.1, 1.3])  # connection dropped; the client times out
def test_an_order_whose_answer_is_lost_is_placed_exactly_once(
    broker, replay, sample_dir, paths, delay_s
) -> None:
    broker.equity()  # Bybit's client first asks what kind of account it is: not the fault here
    replay.exchange.set_faults(
        FaultPlan.parse("lost:1", delay_s=delay_s, path=paths.order, method="POST")
    )
    result = broker.place(OrderRequest("lost-1", BTC, BUY, 0.01))
    price = candle_open(sample_dir, "BTCUSDT", T0)
    assert (result.status, result.filled, result.average_price) == (FILLED, 0.01, price)
    assert result.fee == pytest.approx(0.01 * price * FEE)
    assert replay.exchange.faults_served == 1
    state = account(replay)
    assert state["placements"] == {"lost-1": 1} and state["attempts"] == {"lost-1": 1}
    assert state["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.01)


def test_an_order_refused_by_a_5xx_is_sent_again_once(broker, replay, paths) -> None:
    replay.exchange.set_faults(FaultPlan.parse("500:1", path=paths.order, method="POST", delay_s=0))
    result = broker.place(OrderRequest("retry-1", BTC, BUY, 0.01))
    assert result.status == FILLED
    assert account(replay)["placements"] == {"retry-1": 1}
    assert replay.exchange.requests_by_method[f"POST {paths.order}"] == 2


def test_outcome_unknown_past_the_retry_bound_raises(broker, replay) -> None:
    broker.equity()  # markets loaded before the exchange goes down
    replay.exchange.set_faults(FaultPlan.parse("500:1.0"))
    with pytest.raises(BrokerError, match="outcome unknown after 4 attempts"):
        broker.place(OrderRequest("down-1", BTC, BUY, 0.01))
    replay.exchange.set_faults(None)
    assert account(replay)["placed"] == 0


def test_insufficient_margin_is_a_rejection_not_an_exception(broker, replay, words) -> None:
    account(replay, {"balance": 100})
    result = broker.place(OrderRequest("big-1", BTC, BUY, 1.0))
    assert (result.status, result.reason, result.filled) == (REJECTED, words["margin"], 0)
    assert result.exchange_order_id is None
    assert broker.equity() == 100 and broker.positions() == {}
    assert account(replay)["wallet_balance"] == 100


def test_below_one_lot_step_is_rejected_without_sending(broker, replay) -> None:
    result = broker.place(OrderRequest("tiny-1", BTC, BUY, 0.0004))
    assert result.status == REJECTED and "precision" in (result.reason or "")
    assert account(replay)["attempts"] == {}


def test_reduce_only_flattens_exactly_and_never_flips(broker, replay, words) -> None:
    broker.place(OrderRequest("open-1", ETH, BUY, 0.3))
    flip = broker.place(OrderRequest("flip-1", ETH, BUY, 0.1, reduce_only=True))
    assert (flip.status, flip.reason) == (REJECTED, words["reduce_only"])
    close = broker.place(OrderRequest("close-1", ETH, SELL, 5.0, reduce_only=True))
    assert (close.status, close.filled) == (FILLED, 0.3)
    assert broker.positions() == {}
    again = broker.place(OrderRequest("close-2", ETH, SELL, 0.1, reduce_only=True))
    assert again.status == REJECTED


def test_a_repeated_client_order_id_returns_the_first_order(broker, replay) -> None:
    first = broker.place(OrderRequest("same-1", BTC, BUY, 0.01))
    second = broker.place(OrderRequest("same-1", BTC, BUY, 0.01))
    assert second.status == FILLED
    assert second.exchange_order_id == first.exchange_order_id
    assert (second.filled, second.average_price, second.fee) == (
        first.filled,
        first.average_price,
        pytest.approx(first.fee),
    )
    state = account(replay)
    assert state["placements"] == {"same-1": 1} and state["attempts"] == {"same-1": 2}
    assert broker.positions()[BTC].quantity == pytest.approx(0.01)


def test_configure_market_sets_leverage_and_margin_mode_twice(broker, replay, exchange_id) -> None:
    """ "Already set" answers (Binance's margin type, Bybit's leverage "not modified") are success;
    Bybit's margin mode is the whole account's, so every market follows."""
    broker.configure_market(BTC, 7, "isolated")
    broker.configure_market(BTC, 7, "isolated")
    settings = account(replay)["settings"]
    assert settings["BTCUSDT"] == {"leverage": 7, "margin_type": "ISOLATED"}
    assert settings["ETHUSDT"]["margin_type"] == (
        "ISOLATED" if exchange_id == "bybit" else "CROSSED"
    )
    broker.configure_market(BTC, 3, "cross")
    assert account(replay)["settings"]["BTCUSDT"] == {"leverage": 3, "margin_type": "CROSSED"}
    with pytest.raises(ValueError, match="margin mode"):
        broker.configure_market(BTC, 3, "portfolio")


def test_wrong_secret_fails_clearly_and_never_shows_the_credentials(
    replay, caplog, exchange_id, paths, words
) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt logs each request's headers at DEBUG
    broker = make_broker(replay, exchange_id, secret="wrong-secret-77c1")
    with pytest.raises(BrokerAuthError, match="SIGNALS_API_KEY / SIGNALS_API_SECRET") as caught:
        broker.equity()
    assert words["bad_signature"] in str(caught.value)
    with pytest.raises(BrokerAuthError):
        broker.place(OrderRequest("auth-1", BTC, BUY, 0.01))
    good = make_broker(replay, exchange_id)
    good.place(OrderRequest("auth-2", BTC, BUY, 0.01))
    text = caplog.text + str(caught.value) + repr(caught.value.__cause__) + repr(broker)
    assert paths.key_header in caplog.text  # the headers were logged, redacted
    for secret in (KEY, SECRET, "wrong-secret-77c1"):
        assert secret not in text


def test_open_limit_orders_are_listed_and_cancelled(broker, replay) -> None:
    broker.exchange.load_markets()
    broker.exchange.create_order(ETH, "limit", "buy", 0.1, 1000.0, {"clientOrderId": "lim-1"})
    (order,) = broker.open_orders()
    assert (order.client_order_id, order.symbol, order.side, order.quantity) == (
        "lim-1",
        ETH,
        BUY,
        0.1,
    )
    result = broker.cancel(order)
    assert (result.status, result.filled, result.exchange_order_id) == (
        CANCELLED,
        0,
        order.exchange_order_id,
    )
    assert broker.open_orders() == []
    assert broker.cancel(order).status == CANCELLED  # already gone: says what became of it


def test_open_orders_of_one_market_are_asked_for_that_market_only(broker, replay) -> None:
    broker.exchange.load_markets()
    broker.exchange.create_order(ETH, "limit", "buy", 0.1, 1000.0, {"clientOrderId": "lim-e"})
    broker.exchange.create_order(BTC, "limit", "buy", 0.01, 9000.0, {"clientOrderId": "lim-b"})
    assert [o.client_order_id for o in broker.open_orders(ETH)] == ["lim-e"]
    assert [o.client_order_id for o in broker.open_orders(BTC)] == ["lim-b"]
    assert sorted(o.client_order_id for o in broker.open_orders()) == ["lim-b", "lim-e"]
    assert broker.open_orders(ETH.replace("ETH", "XRP")) == []


@pytest.mark.parametrize(
    ("kind", "sends"),
    [("reset", 2), ("reset_after", 1), ("truncated", 1), ("malformed_json", 1), ("timeout", 2)],
)
def test_an_order_through_each_network_fault_is_placed_exactly_once(
    broker, replay, sample_dir, paths, kind, sends
) -> None:
    """Carried out but unanswered (reset_after, truncated, malformed_json): found by its client
    order id, not sent again; not carried out (reset, timeout): sent again, placed once."""
    broker.equity()
    replay.exchange.set_faults(
        FaultPlan.parse(f"{kind}:1", delay_s=1.3, path=paths.order, method="POST")
    )
    result = broker.place(OrderRequest(f"net-{kind}", BTC, BUY, 0.01))
    price = candle_open(sample_dir, "BTCUSDT", T0)
    assert (result.status, result.filled, result.average_price) == (FILLED, 0.01, price)
    assert replay.exchange.faults_served == 1
    state = account(replay)
    assert state["placements"] == {f"net-{kind}": 1}
    assert state["attempts"] == {f"net-{kind}": 1}  # carried out once
    assert replay.exchange.requests_by_method[f"POST {paths.order}"] == sends
    assert state["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.01)


@pytest.mark.parametrize("kind", ["reset", "reset_after", "truncated", "malformed_json"])
def test_reads_through_each_network_fault_are_retried(broker, replay, paths, kind) -> None:
    broker.place(OrderRequest("held", BTC, BUY, 0.01))
    replay.exchange.set_faults(FaultPlan.parse(f"{kind}:1", path=paths.positions))
    assert broker.positions()[BTC].quantity == pytest.approx(0.01)
    assert replay.exchange.faults_served == 1
