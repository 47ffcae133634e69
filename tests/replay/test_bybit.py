"""The replay exchange's Bybit v5 dialect over plain HTTP, signed here by hand (independently of
ccxt): Bybit's envelope, signatures, paging and refusals; the account shared with Binance."""

from __future__ import annotations

import hmac
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.replay.server import ReplayServer
from tests.helpers.replay import account, fresh, frozen_replay

KEY, SECRET = "bybit-test-key", "bybit-test-secret"
NOW = parse_date_ms("2023-03-01T10:30:00Z")
H = 3_600_000


@pytest.fixture(scope="module")
def served(sample_dir: Path):
    with frozen_replay(sample_dir, NOW, KEY, SECRET) as server:
        yield server


@pytest.fixture()
def replay(served: ReplayServer) -> ReplayServer:
    return fresh(served, NOW)


def call(
    server: ReplayServer,
    method: str,
    path: str,
    params: dict | None = None,
    secret: str | None = SECRET,
) -> tuple[int, dict]:
    """One v5 request; signed as Bybit's docs say when `secret` is given."""
    params = params or {}
    query = urlencode(params) if method == "GET" else ""
    body = json.dumps(params) if method == "POST" else ""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        stamp, window = "1700000000000", "5000"
        payload = stamp + KEY + window + (body if method == "POST" else query)
        headers.update(
            {
                "X-BAPI-API-KEY": KEY,
                "X-BAPI-TIMESTAMP": stamp,
                "X-BAPI-RECV-WINDOW": window,
                "X-BAPI-SIGN": hmac.new(secret.encode(), payload.encode(), "sha256").hexdigest(),
            }
        )
    url = f"{server.url}{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(
        url, data=body.encode() or None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def linear(**params: object) -> dict:
    return {"category": "linear", **params}


def ok(server: ReplayServer, method: str, path: str, params: dict | None = None) -> dict:
    status, body = call(server, method, path, params)
    assert (status, body["retCode"], body["retMsg"]) in (
        (200, 0, "OK"),
        (200, 0, "Request accepted"),
    )
    assert body["time"] == server.exchange.clock.now_ms()  # frozen: the replay's clock
    return body["result"]


def test_klines_are_newest_first_closed_only_and_match_the_recording(replay, sample_dir) -> None:
    page = ok(replay, "GET", "/v5/market/kline", linear(symbol="BTCUSDT", interval="60", limit=3))
    frame = pd.read_csv(sample_dir / "BTCUSDT.csv.gz").set_index("timestamp")
    opens = [int(row[0]) for row in page["list"]]
    assert opens == [NOW - NOW % H - H * k for k in (1, 2, 3)]  # 10:00 is still open
    for row in page["list"]:
        recorded = frame.loc[int(row[0])]
        assert [float(v) for v in row[1:6]] == [
            recorded["open"], recorded["high"], recorded["low"], recorded["close"],
            recorded["volume"],
        ]  # fmt: skip
        assert all(isinstance(v, str) for v in row)
    start = parse_date_ms("2023-02-01")
    window = {"category": "linear", "symbol": "BTCUSDT", "interval": "D", "start": start}
    days = ok(replay, "GET", "/v5/market/kline", {**window, "end": start + 9 * 24 * H, "limit": 4})
    assert [int(r[0]) for r in days["list"]] == [start + d * 24 * H for d in (9, 8, 7, 6)]
    forward = ok(replay, "GET", "/v5/market/kline", {**window, "limit": 2})
    assert [int(r[0]) for r in forward["list"]] == [start + 24 * H, start]


@pytest.mark.parametrize(
    ("params", "ret_code", "words"),
    [
        ({"symbol": "DOGEUSDT", "interval": "60"}, 10001, "Not supported symbols"),
        ({"symbol": "BTCUSDT", "interval": "1h"}, 10001, "interval"),
        ({"symbol": "BTCUSDT", "interval": "60", "limit": 1001}, 10001, "limit"),
        ({"symbol": "BTCUSDT", "interval": "60", "category": "spot"}, 10001, "category"),
    ],
)
def test_bad_kline_requests_are_refused_in_bybit_words(replay, params, ret_code, words) -> None:
    status, body = call(replay, "GET", "/v5/market/kline", {"category": "linear", **params})
    assert (status, body["retCode"]) == (200, ret_code) and words in body["retMsg"]


def test_funding_history_is_a_window_newest_first(replay) -> None:
    end = parse_date_ms("2023-02-28T00:00:00Z")
    query = {"category": "linear", "symbol": "ETHUSDT", "endTime": end, "limit": 3}
    rows = ok(replay, "GET", "/v5/market/funding/history", query)["list"]
    assert [int(r["fundingRateTimestamp"]) for r in rows] == [end - 8 * H * k for k in range(3)]
    _, body = call(
        replay, "GET", "/v5/market/funding/history", linear(symbol="ETHUSDT", startTime=end)
    )
    assert body["retCode"] == 10001 and "endTime" in body["retMsg"]


def test_instruments_list_the_folder_as_linear_perpetuals(replay, sample_dir) -> None:
    listed = ok(replay, "GET", "/v5/market/instruments-info", {"category": "linear"})["list"]
    markets = sorted(p.name.split(".")[0] for p in sample_dir.glob("*USDT.csv.gz"))
    assert [m["symbol"] for m in listed] == markets
    assert {m["contractType"] for m in listed} == {"LinearPerpetual"}
    prelisted = ok(replay, "GET", "/v5/market/instruments-info", linear(status="PreLaunch"))
    assert prelisted["list"] == []


@pytest.mark.parametrize(
    ("secret", "headers_sent", "ret_code"),
    [("wrong-secret", True, 10004), (None, False, 10003)],
)
def test_unsigned_or_badly_signed_requests_are_refused(
    replay, secret, headers_sent, ret_code
) -> None:
    query = linear(settleCoin="USDT")
    status, body = call(replay, "GET", "/v5/position/list", query, secret=secret)
    assert (status, body["retCode"]) == (401, ret_code)
    assert KEY not in json.dumps(body) and SECRET not in json.dumps(body)


def test_an_order_round_trip_in_bybit_words_moves_the_one_account(replay, sample_dir) -> None:
    order = linear(
        symbol="ETHUSDT", side="Sell", orderType="Market", qty="0.50", orderLinkId="rt-1"
    )
    placed = ok(replay, "POST", "/v5/order/create", order)
    assert set(placed) == {"orderId", "orderLinkId"} and placed["orderLinkId"] == "rt-1"
    _, again = call(replay, "POST", "/v5/order/create", order)
    assert again["retCode"] == 110072  # the orderLinkId is taken: not placed twice
    query = linear(symbol="ETHUSDT", orderLinkId="rt-1")
    (found,) = ok(replay, "GET", "/v5/order/realtime", query)["list"]
    frame = pd.read_csv(sample_dir / "ETHUSDT.csv.gz").set_index("timestamp")
    price = float(frame.loc[NOW - NOW % H, "open"])
    assert (found["orderStatus"], found["cumExecQty"], float(found["avgPrice"])) == (
        "Filled",
        "0.500",
        price,
    )
    assert float(found["cumExecFee"]) == pytest.approx(0.5 * price * 0.0005)
    (position,) = ok(replay, "GET", "/v5/position/list", linear(settleCoin="USDT"))["list"]
    assert (position["symbol"], position["side"], position["size"]) == ("ETHUSDT", "Sell", "0.500")
    assert account(replay)["positions"]["ETHUSDT"]["qty"] == -0.5
    query = linear(symbol="ETHUSDT", orderId=placed["orderId"])
    (fill,) = ok(replay, "GET", "/v5/execution/list", query)["list"]
    assert (fill["orderLinkId"], fill["execQty"], fill["side"]) == ("rt-1", "0.500", "Sell")
    wallet = ok(replay, "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    coin = wallet["list"][0]["coin"][0]
    assert float(coin["walletBalance"]) == pytest.approx(10_000 - 0.5 * price * 0.0005)
    # The margin mode is the account's: not switched while a market holds a position.
    _, refused = call(
        replay, "POST", "/v5/account/set-margin-mode", {"setMarginMode": "ISOLATED_MARGIN"}
    )
    assert refused["retCode"] == 3400045 and "ETHUSDT" in refused["retMsg"]
    assert {s["margin_type"] for s in account(replay)["settings"].values()} == {"CROSSED"}


def test_leverage_already_set_is_not_modified(replay) -> None:
    query = {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "4", "sellLeverage": "4"}
    assert ok(replay, "POST", "/v5/position/set-leverage", query) == {}
    _, body = call(replay, "POST", "/v5/position/set-leverage", query)
    assert body["retCode"] == 110043
    assert account(replay)["settings"]["BTCUSDT"]["leverage"] == 4


def test_a_limit_order_rests_is_listed_and_cancelled_once(replay) -> None:
    order = linear(
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.01",
        price="9000",
        orderLinkId="lim-1",
    )
    placed = ok(replay, "POST", "/v5/order/create", order)
    listed = ok(replay, "GET", "/v5/order/realtime", {"category": "linear", "settleCoin": "USDT"})
    assert [o["orderLinkId"] for o in listed["list"]] == ["lim-1"]
    cancel = {"category": "linear", "symbol": "BTCUSDT", "orderId": placed["orderId"]}
    assert ok(replay, "POST", "/v5/order/cancel", cancel)["orderLinkId"] == "lim-1"
    _, body = call(replay, "POST", "/v5/order/cancel", cancel)
    assert body["retCode"] == 110001
    history = ok(replay, "GET", "/v5/order/history", {"category": "linear", "symbol": "BTCUSDT"})
    assert [(o["orderLinkId"], o["orderStatus"]) for o in history["list"]] == [
        ("lim-1", "Cancelled")
    ]


def test_unknown_paths_and_faults_answer_in_bybit_shape(replay) -> None:
    status, body = call(replay, "GET", "/v5/asset/coin/query-info")
    assert (status, body["retCode"]) == (404, 10001)
    for kind, code in (("429", 10006), ("500", 10016)):
        urllib.request.urlopen(
            urllib.request.Request(
                f"{replay.url}/_replay/faults",
                data=json.dumps({"spec": f"{kind}:1"}).encode(),
                method="POST",
            ),
            timeout=5,
        ).read()
        status, body = call(replay, "GET", "/v5/market/time")
        assert (status, body["retCode"]) == (int(kind), code)


def test_conditional_orders_rest_untriggered_and_fill_by_the_candles(replay, sample_dir) -> None:
    """A long's stop (a sell triggered falling) and take-profit (rising) rest Untriggered,
    apart from the plain orders; on the first closed candle that reaches one it is Filled
    under its own id at the backtest's price (read here from the sample), the other stays
    until cancelled, then Deactivated."""
    ok(replay, "POST", "/v5/order/create", linear(symbol="BTCUSDT", side="Buy",
       orderType="Market", qty="0.01", orderLinkId="long-1"))  # fmt: skip
    frame = pd.read_csv(sample_dir / "BTCUSDT.csv.gz")
    entry = float(frame.loc[frame["timestamp"] == NOW - NOW % H, "open"].iloc[0])
    stop, take = round(entry * 0.99, 1), round(entry * 1.01, 1)
    for link, direction, price in (("sl-1", 2, stop), ("tp-1", 1, take)):
        ok(replay, "POST", "/v5/order/create", linear(symbol="BTCUSDT", side="Sell",
           orderType="Market", qty="0.01", triggerPrice=str(price),
           triggerDirection=direction, reduceOnly=True, orderLinkId=link))  # fmt: skip
    _, wrong = call(replay, "POST", "/v5/order/create", linear(symbol="BTCUSDT", side="Sell",
                    orderType="Market", qty="0.01", triggerPrice=str(take), triggerDirection=2,
                    reduceOnly=True))  # fmt: skip
    assert wrong["retCode"] == 110093  # a falling trigger above the price would fire at once
    plain = ok(replay, "GET", "/v5/order/realtime", linear(settleCoin="USDT"))["list"]
    assert plain == []
    resting = ok(replay, "GET", "/v5/order/realtime",
                 linear(settleCoin="USDT", orderFilter="StopOrder"))["list"]  # fmt: skip
    assert sorted((o["orderLinkId"], o["orderStatus"], o["triggerDirection"]) for o in resting) == [
        ("sl-1", "Untriggered", 2),
        ("tp-1", "Untriggered", 1),
    ]
    later = frame[frame["timestamp"] >= NOW - NOW % H]
    hit = later[(later["low"] <= stop) | (later["high"] >= take)].iloc[0]
    stopped = hit["low"] <= stop
    fired, other = ("sl-1", "tp-1") if stopped else ("tp-1", "sl-1")
    price = min(hit["open"], stop) if stopped else take
    replay.exchange.clock.set(int(hit["timestamp"]) + H, 1e-9)
    query = linear(symbol="BTCUSDT", orderFilter="StopOrder", orderLinkId=fired)
    (done,) = ok(replay, "GET", "/v5/order/realtime", query)["list"]
    assert (done["orderStatus"], done["cumExecQty"], float(done["avgPrice"])) == (
        "Filled",
        "0.010",
        price,
    )
    (fill,) = ok(replay, "GET", "/v5/execution/list",
                 linear(symbol="BTCUSDT", orderId=done["orderId"]))["list"]  # fmt: skip
    assert (fill["orderLinkId"], float(fill["execPrice"]), fill["stopOrderType"]) == (
        fired,
        price,
        "Stop",
    )
    assert account(replay)["positions"] == {}
    ok(replay, "POST", "/v5/order/cancel", linear(symbol="BTCUSDT", orderLinkId=other))
    query = linear(symbol="BTCUSDT", orderFilter="StopOrder", orderLinkId=other)
    (gone,) = ok(replay, "GET", "/v5/order/history", query)["list"]
    assert gone["orderStatus"] == "Deactivated"
    _, again = call(replay, "POST", "/v5/order/cancel", linear(symbol="BTCUSDT", orderLinkId=other))
    assert again["retCode"] == 110001
