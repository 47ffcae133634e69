"""Shared by the trading-side tests: a frozen replay exchange, its control endpoint, and the
candle prices read straight from the sample CSV (independently of the code under test)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from pipeline.data.timeframes import parse_date_ms
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer


def candle_open(sample_dir: Path, market: str, when: str) -> float:
    """The open of the 1h candle holding `when`, read straight from the CSV."""
    frame = pd.read_csv(sample_dir / f"{market}.csv.gz")
    hour = parse_date_ms(when) // 3_600_000 * 3_600_000
    return float(frame.loc[frame["timestamp"] == hour, "open"].iloc[0])


@contextmanager
def frozen_replay(sample_dir: Path, clock_ms: int, key: str, secret: str) -> Iterator[ReplayServer]:
    """The replay exchange with its clock as good as frozen at `clock_ms` (tests move it)."""
    clock = ReplayClock(clock_ms, speed=1e-9)
    exchange = ReplayExchange(sample_dir, clock, api_key=key, api_secret=secret)
    with ReplayServer(exchange) as server:
        yield server


def fresh(server: ReplayServer, clock_ms: int, balance: float = 10_000.0) -> ReplayServer:
    """A module's replay exchange made new for the next test (its candles stay loaded, which
    is what takes time): a fresh account (no orders, trigger orders or positions), no faults,
    zeroed counters, the clock frozen again."""
    exchange = server.exchange
    exchange.set_faults(None)
    exchange.account.reset(balance)
    exchange.algo_orders.reset()
    exchange.market.kline_overrides.clear()
    exchange.clock.set(clock_ms, 1e-9)
    exchange.requests.clear()
    exchange.requests_by_method.clear()
    exchange.faults_served = 0
    return server


def account(server: ReplayServer, body: dict | None = None) -> dict:
    """GET (or, with a body, POST) the replay's `/_replay/account` control endpoint."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.url}/_replay/account", data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())
