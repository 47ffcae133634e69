"""The replay exchange's trading side, through the real ccxt client and raw signed HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import ccxt
import pandas as pd
import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.client import make_exchange
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from tests.helpers.replay import candle_open, frozen_replay

KEY, SECRET = "acct-test-key-5b1e", "acct-test-secret-c9d4"
BTC, ETH, XRP = "BTC/USDT:USDT", "ETH/USDT:USDT", "XRP/USDT:USDT"
T0 = "2023-03-01T10:30:00Z"  # inside the 10:00 candle
FEE = 0.0005


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, parse_date_ms(T0), KEY, SECRET) as server:
        yield server


def client(server: ReplayServer, key: str = KEY, secret: str = SECRET) -> ccxt.Exchange:
    exchange = make_exchange("binanceusdm", server.url, timeout_ms=2000)
    exchange.apiKey, exchange.secret = key, secret
    exchange.options["fetchCurrencies"] = False  # spot currencies (sapi) are not served
    return exchange


def signed(
    server: ReplayServer, method: str, path: str, params: dict, secret: str = SECRET
) -> tuple[int, object]:
    """A request signed as Binance documents it, without ccxt."""
    query = urllib.parse.urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    query += f"&signature={signature}"
    url, data = f"{server.url}{path}", None
    if method == "POST":
        data = query.encode()
    else:
        url += f"?{query}"
    request = urllib.request.Request(url, data=data, method=method, headers={"X-MBX-APIKEY": KEY})
    return _open(request)


def _open(request: urllib.request.Request) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def control(server: ReplayServer, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.url}/_replay/{path}", data=data, method="POST" if data else "GET"
    )
    status, answer = _open(request)
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


def test_market_order_fills_at_the_open_of_the_candle_in_progress(replay, sample_dir) -> None:
    ex = client(replay)
    price = candle_open(sample_dir, "BTCUSDT", T0)
    assert ex.fetch_ticker(BTC)["last"] == price
    order = ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "fill-1"})
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, price)
    assert order["clientOrderId"] == "fill-1"
    trades = ex.fetch_my_trades(BTC, params={"orderId": order["id"]})
    assert [(t["price"], t["amount"]) for t in trades] == [(price, 0.01)]
    assert trades[0]["fee"]["cost"] == pytest.approx(0.01 * price * FEE)
    assert trades[0]["fee"]["currency"] == "USDT"
    assert control(replay, "account")["wallet_balance"] == pytest.approx(
        10_000 - 0.01 * price * FEE
    )

    # An hour later the next candle is in progress: its open is the price.
    later = "2023-03-01T11:00:00Z"
    replay.exchange.clock.set(parse_date_ms(later), 1e-9)
    again = ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "fill-2"})
    assert again["average"] == candle_open(sample_dir, "BTCUSDT", later)


def test_past_the_end_of_the_data_the_price_is_the_last_close(replay, sample_dir) -> None:
    last = pd.read_csv(sample_dir / "XRPUSDT.csv.gz").iloc[-1]
    replay.exchange.clock.set(int(last["timestamp"]) + 5 * 3_600_000, 1e-9)
    assert client(replay).fetch_ticker(XRP)["last"] == float(last["close"])


def test_balance_positions_and_unrealised_pnl(replay, sample_dir) -> None:
    ex = client(replay)
    ex.create_order(ETH, "market", "sell", 0.5, None, {"newClientOrderId": "short-1"})
    entry = candle_open(sample_dir, "ETHUSDT", T0)
    later = "2023-03-01T14:00:00Z"
    replay.exchange.clock.set(parse_date_ms(later), 1e-9)
    mark = candle_open(sample_dir, "ETHUSDT", later)
    upnl = -0.5 * (mark - entry)
    wallet = 10_000 - 0.5 * entry * FEE
    (position,) = ex.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == (ETH, "short", 0.5)
    assert position["entryPrice"] == entry
    assert position["unrealizedPnl"] == pytest.approx(upnl)
    assert position["info"]["positionAmt"] == "-0.500"
    assert ex.fetch_positions([BTC]) == []
    assert [p["symbol"] for p in ex.fetch_positions([ETH])] == [ETH]
    balance = ex.fetch_balance()
    assert balance["USDT"]["total"] == pytest.approx(wallet + upnl)
    assert float(balance["info"]["totalWalletBalance"]) == pytest.approx(wallet)
    assert float(balance["info"]["totalUnrealizedProfit"]) == pytest.approx(upnl)


def test_closing_realises_pnl_and_a_flip_reopens_at_the_fill_price(replay, sample_dir) -> None:
    ex = client(replay)
    ex.create_order(BTC, "market", "buy", 0.02, None, {"newClientOrderId": "long"})
    entry = candle_open(sample_dir, "BTCUSDT", T0)
    later = "2023-03-01T16:00:00Z"
    replay.exchange.clock.set(parse_date_ms(later), 1e-9)
    exit_price = candle_open(sample_dir, "BTCUSDT", later)
    flip = ex.create_order(BTC, "market", "sell", 0.05, None, {"newClientOrderId": "flip"})
    (trade,) = ex.fetch_my_trades(BTC, params={"orderId": flip["id"]})
    assert float(trade["info"]["realizedPnl"]) == pytest.approx(0.02 * (exit_price - entry))
    fees = 0.02 * entry * FEE + 0.05 * exit_price * FEE
    account = control(replay, "account")
    assert account["wallet_balance"] == pytest.approx(10_000 + 0.02 * (exit_price - entry) - fees)
    assert account["positions"]["BTCUSDT"]["qty"] == pytest.approx(-0.03)
    assert account["positions"]["BTCUSDT"]["entry_price"] == exit_price


def test_insufficient_margin_is_refused_and_changes_nothing(replay) -> None:
    ex = client(replay)
    control(replay, "account", {"balance": 100})
    before = control(replay, "account")
    with pytest.raises(ccxt.ExchangeError, match=r'-2019,"msg":"Margin is insufficient\."'):
        ex.create_order(BTC, "market", "buy", 1, None, {"newClientOrderId": "too-big"})
    after = control(replay, "account")
    assert after["wallet_balance"] == before["wallet_balance"] == 100
    assert after["positions"] == {} and after["orders"] == 0 and after["rejected"] == 1
    # The client order id was not used up by the refusal.
    ex.create_order(BTC, "market", "buy", 0.001, None, {"newClientOrderId": "too-big"})


def test_reduce_only_closes_at_most_the_position_and_never_flips(replay) -> None:
    ex = client(replay)
    ex.create_order(ETH, "market", "buy", 0.3, None, {"newClientOrderId": "open"})
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        ex.create_order(ETH, "market", "buy", 0.1, None, {"reduceOnly": True})
    close = ex.create_order(ETH, "market", "sell", 1.0, None, {"reduceOnly": True})
    assert close["filled"] == 0.3
    assert control(replay, "account")["positions"] == {}
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        ex.create_order(ETH, "market", "sell", 0.1, None, {"reduceOnly": True})


def test_a_duplicate_client_order_id_is_refused_and_the_original_kept(replay) -> None:
    ex = client(replay)
    first = ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "dup-1"})
    with pytest.raises(ccxt.ExchangeError, match=r'-4116,"msg":"ClientOrderId is duplicated\."'):
        ex.create_order(ETH, "market", "sell", 0.5, None, {"newClientOrderId": "dup-1"})
    found = ex.fetch_order(None, BTC, {"origClientOrderId": "dup-1"})
    assert (found["id"], found["side"], found["filled"]) == (first["id"], "buy", 0.01)
    account = control(replay, "account")
    assert account["placements"] == {"dup-1": 1} and account["attempts"] == {"dup-1": 2}
    assert set(account["positions"]) == {"BTCUSDT"}


def test_quantity_and_notional_filters(replay) -> None:
    cases = [
        ({"quantity": "0.0015"}, -1111),  # finer than the 0.001 lot step
        ({"quantity": "0"}, -4003),
        ({"quantity": "2000000"}, -4005),
    ]
    for extra, code in cases:
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", **extra}
        status, body = signed(replay, "POST", "/fapi/v1/order", params)
        assert (status, body["code"]) == (400, code), extra
    with pytest.raises(ccxt.ExchangeError, match="-4164"):  # 0.001 XRP is far below 5 USDT
        client(replay).create_order(XRP, "market", "buy", 0.001)
    assert control(replay, "account")["orders"] == 0


def test_limit_orders_rest_until_cancelled(replay) -> None:
    ex = client(replay)
    order = ex.create_order(ETH, "limit", "buy", 0.1, 1000.0, {"newClientOrderId": "rest-1"})
    assert order["status"] == "open"
    (listed,) = ex.fetch_open_orders(ETH)
    assert (listed["id"], listed["clientOrderId"], listed["amount"]) == (order["id"], "rest-1", 0.1)
    off_tick = {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.1"}
    off_tick |= {"price": "1000.001", "timeInForce": "GTC"}  # ccxt would round it to the tick
    status, body = signed(replay, "POST", "/fapi/v1/order", off_tick)
    assert (status, body["code"]) == (400, -4014)
    cancelled = ex.cancel_order(order["id"], ETH)
    assert cancelled["status"] == "canceled"
    assert ex.fetch_open_orders(ETH) == []
    assert ex.fetch_order(None, ETH, {"origClientOrderId": "rest-1"})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(order["id"], ETH)
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("42", ETH)


def test_leverage_and_margin_type(replay) -> None:
    ex = client(replay)
    assert ex.set_leverage(5, BTC)["leverage"] == 5
    status, body = signed(
        replay, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 126}
    )
    assert (status, body["code"]) == (400, -4028)  # ccxt itself refuses 126 before sending
    ex.set_margin_mode("isolated", BTC)
    with pytest.raises(ccxt.MarginModeAlreadySet):  # ccxt's binance default throws on -4046
        ex.set_margin_mode("isolated", BTC)
    settings = control(replay, "account")["settings"]["BTCUSDT"]
    assert settings == {"leverage": 5, "margin_type": "ISOLATED"}
    ex.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.OperationRejected, match="-4048"):
        ex.set_margin_mode("cross", BTC)
    (position,) = ex.fetch_positions([BTC])
    assert position["marginMode"] == "isolated"


def test_leverage_bounds_the_margin(replay) -> None:
    ex = client(replay)
    control(replay, "account", {"balance": 1000})
    ex.set_leverage(1, BTC)
    with pytest.raises(ccxt.ExchangeError, match="-2019"):  # ~1180 USDT of margin at 1x
        ex.create_order(BTC, "market", "buy", 0.05)
    ex.set_leverage(2, BTC)
    assert ex.create_order(BTC, "market", "buy", 0.05)["filled"] == 0.05


def test_requests_are_authenticated(replay) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="-1022") as wrong_secret:
        client(replay, secret="not-the-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015") as wrong_key:
        client(replay, key="not-the-key").fetch_balance()
    for caught in (wrong_secret, wrong_key):
        assert SECRET not in str(caught.value) and KEY not in str(caught.value)
    request = urllib.request.Request(f"{replay.url}/fapi/v3/account")  # no key at all
    status, body = _open(request)
    assert (status, body["code"]) == (401, -2014)
    status, body = signed(replay, "GET", "/fapi/v3/account", {}, secret="other")
    assert (status, body["code"]) == (400, -1022)
    assert signed(replay, "GET", "/fapi/v3/account", {})[0] == 200
    assert SECRET not in repr(replay.exchange) and KEY not in repr(replay.exchange)


def test_a_lost_answer_still_places_the_order(replay) -> None:
    """The fault is limited to POST /fapi/v1/order: the order is placed, the answer never
    arrives; reads are untouched."""
    control(
        replay,
        "faults",
        {"spec": "lost:1", "delay_s": 0.1, "path": "/fapi/v1/order", "method": "POST"},
    )
    ex = client(replay)
    ex.fetch_balance()
    assert ex.fetch_open_orders(BTC) == []
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "lost-1"})
    assert ex.fetch_order(None, BTC, {"origClientOrderId": "lost-1"})["status"] == "closed"
    account = control(replay, "account")
    assert account["placements"] == {"lost-1": 1}
    assert account["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.01)
    assert replay.exchange.faults_served == 1


def test_faults_limited_to_a_path_and_method() -> None:
    plan = FaultPlan.parse("500:2", path="/fapi/v1/order", method="post")
    assert plan.draw("GET", "/fapi/v1/order") is None
    assert plan.draw("POST", "/fapi/v1/klines") is None
    assert [plan.draw("POST", "/fapi/v1/order") for _ in range(3)] == ["500", "500", None]
    assert FaultPlan.parse("lost:1").draw("GET", "/fapi/v1/ping") == "lost"


def test_control_sets_and_resets_the_account(replay) -> None:
    client(replay).create_order(BTC, "market", "buy", 0.01)
    assert control(replay, "account", {"balance": 2500})["wallet_balance"] == 2500
    assert control(replay, "account")["positions"] != {}
    reset = control(replay, "account", {"reset": True, "balance": 750})
    assert reset["wallet_balance"] == 750
    assert (reset["positions"], reset["orders"], reset["placed"]) == ({}, 0, 0)
