"""The `/_replay/` endpoints: how tests, demos and benchmarks steer a running replay exchange
(its faults, clock and account) and read its counters, over the same HTTP as the API.

GET `/_replay/stats`, `/_replay/account`; POST `/_replay/faults`
{"spec": "lost:1", "delay_s", "seed", "path", "method"} or {} to clear,
`/_replay/clock` {"ms", "speed"}, `/_replay/account` {"balance", "reset"},
`/_replay/klines` {"symbol": "BTCUSDT", "rows": [[...], ...]} (a data fault: these raw kline
arrays, wrong types and all, are what GET /fapi/v1/klines serves for that market on every
interval, paged by startTime/endTime/limit, clock ignored) or {"symbol": "BTCUSDT"} (or {}
for every market) to serve the recording again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.replay.faults import FaultPlan

if TYPE_CHECKING:
    from pipeline.replay.server import ReplayExchange

CONTROL_PREFIX = "/_replay/"
_UNKNOWN = (404, {"msg": "unknown control path"})


def control(exchange: ReplayExchange, method: str, path: str, body: str) -> tuple[int, object]:
    """One control request → (HTTP status, JSON body); a bad value is a 400."""
    try:
        if method == "GET" and path == "/_replay/stats":
            return 200, exchange.stats()
        if method == "GET" and path == "/_replay/account":
            return 200, _account(exchange)
        if method != "POST":
            return _UNKNOWN
        return _control_post(exchange, path, json.loads(body or "{}"))
    except (ValueError, TypeError) as err:
        return 400, {"msg": str(err)}


def _control_post(exchange: ReplayExchange, path: str, body: dict) -> tuple[int, object]:
    if path == "/_replay/faults":
        spec = body.get("spec")
        plan = None
        if spec:
            plan = FaultPlan.parse(
                spec,
                float(body.get("delay_s", 15.0)),
                int(body.get("seed", 0)),
                path=body.get("path"),
                method=body.get("method"),
            )
        exchange.set_faults(plan)
    elif path == "/_replay/klines":
        market = exchange.market
        if "symbol" not in body:
            market.kline_overrides.clear()
        else:
            market.set_klines(str(body["symbol"]), body.get("rows"))
    elif path == "/_replay/clock":
        exchange.clock.set(body.get("ms"), body.get("speed"))
    elif path == "/_replay/account":
        account = exchange.account
        balance = body.get("balance")
        if body.get("reset"):
            account.reset(float(balance) if balance is not None else account.wallet)
            exchange.algo_orders.reset()
        elif balance is not None:
            account.set_balance(float(balance))
        return 200, _account(exchange)
    else:
        return _UNKNOWN
    return 200, {"ok": True}


def _account(exchange: ReplayExchange) -> dict:
    """The account's snapshot, its resting (algo) orders checked and counted first."""
    exchange.algo_orders.watch()
    snapshot = exchange.account.snapshot()
    snapshot["open_algo_orders"] = sum(
        o.status == "NEW" for o in exchange.algo_orders.orders.values()
    )
    return snapshot
