"""What the exchange trials share: a fresh PostgreSQL database (embedded unless a server is
named), the replay exchange over real HTTP with its clock frozen where the trial puts it, a
model to sign recorded signals with, and the book read back to compare with the exchange."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psycopg

from pipeline.exchange.ids import BINANCE_USDM
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.store.database import Database, close_all, fresh_database

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO.parent / "shared" / "data" / "binance-usdm-1h"
KEY, SECRET = "trial-key-5d1e0c", "trial-secret-93ab7f"
TIMEFRAME, H = "1h", 3_600_000
EXCHANGE = BINANCE_USDM  # the default exchange of the trials (see `trial_exchange`)
ENV_EXCHANGE = "SIGNALS_EXCHANGE"  # what the project's settings read, in child processes too


def trial_exchange() -> str:
    """The exchange the trial's ccxt clients speak to the replay exchange (binanceusdm or
    bybit; it speaks both), and the exchange its book and candles are stored under."""
    return os.environ.get(ENV_EXCHANGE) or EXCHANGE


@contextmanager
def speaking(exchange: str) -> Iterator[str]:
    """`exchange` is the trial's (and its child processes') for the block; restored after."""
    from pipeline.replay.dialects import dialect

    dialect(exchange)  # a clear error for an exchange the replay does not speak
    before = os.environ.get(ENV_EXCHANGE)
    os.environ[ENV_EXCHANGE] = exchange
    try:
        yield exchange
    finally:
        if before is None:
            os.environ.pop(ENV_EXCHANGE, None)
        else:
            os.environ[ENV_EXCHANGE] = before


def exchange_flag(exchange: str) -> str:
    """What a trial's command line adds for `exchange` (nothing for the default)."""
    return "" if exchange == BINANCE_USDM else f" --exchange {exchange}"


@contextmanager
def trial_server(server_url: str | None = None) -> Iterator[str]:
    """A PostgreSQL server's URL: `server_url` when given, else an embedded server in a
    temporary SIGNALS_HOME, stopped and removed after."""
    if server_url:
        yield server_url
        return
    from pipeline.store.embedded import embedded_url, stop_embedded

    home = Path(tempfile.mkdtemp(prefix="signals-trial-"))
    before = os.environ.get("SIGNALS_HOME")
    os.environ["SIGNALS_HOME"] = str(home)
    pgdata = home / "pg"
    try:
        yield embedded_url(pgdata)
    finally:
        close_all()
        stop_embedded(pgdata)
        shutil.rmtree(home, ignore_errors=True)
        if before is None:
            os.environ.pop("SIGNALS_HOME", None)
        else:
            os.environ["SIGNALS_HOME"] = before


@contextmanager
def fresh_trial_database(server_url: str) -> Iterator[str]:
    """The URL of a fresh database on the server, dropped after."""
    name = f"trial_{uuid.uuid4().hex[:10]}"
    url = fresh_database(server_url, name)
    try:
        yield url
    finally:
        close_all()
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def trial_database(server_url: str | None = None) -> Iterator[str]:
    """The URL of a fresh database: on the server at `server_url` when given (dropped after),
    else on an embedded server in a temporary SIGNALS_HOME (stopped and removed after)."""
    with trial_server(server_url) as server, fresh_trial_database(server) as url:
        yield url


@contextmanager
def replay_exchange(data_dir: Path, clock_ms: int) -> Iterator[ReplayServer]:
    """The replay exchange on 127.0.0.1, its clock as good as frozen at `clock_ms`."""
    clock = ReplayClock(clock_ms, speed=1e-9)
    exchange = ReplayExchange(data_dir, clock, api_key=KEY, api_secret=SECRET)
    with ReplayServer(exchange) as server:
        yield server


def save_trial_model(db: Database) -> int:
    """A model row for the trial's signals to name (no weights: nothing is inferred)."""
    from pipeline.store.models import ModelRecord, save_model

    with db.connection() as conn:
        return save_model(
            conn,
            ModelRecord(
                name="trial",
                timeframe=TIMEFRAME,
                config={},
                features=[],
                scaler={},
                data_window={},
                metrics={},
                seed=0,
                checkpoint=b"trial: no weights",
            ),
        )


def record_side(db: Database, model_id: int, symbol: str, candle_ms: int, side: int):
    """Record (or find, when already recorded) the signal of `side` for one candle."""
    from pipeline.signals.inference import FLAT, LONG, SHORT, Decision
    from pipeline.store.signals import record_signal

    p_up = {LONG: 0.8, SHORT: 0.2, FLAT: 0.5}[side]
    decision = Decision(
        model_id=model_id,
        market=symbol.split("/")[0] + "USDT",
        timestamp=pd.Timestamp(candle_ms, unit="ms", tz="UTC"),
        probability_up=p_up,
        confidence=max(p_up, 1 - p_up),
        side=side,
        threshold=0.6,
        input_hash=f"{candle_ms:064d}",
    )
    with db.connection() as conn:
        return record_signal(
            conn,
            exchange=trial_exchange(),
            symbol=symbol,
            timeframe=TIMEFRAME,
            candle_ms=candle_ms,
            decision=decision,
            run_id=None,
            timings={},
        )


def market_id(symbol: str) -> str:
    """BTC/USDT:USDT → BTCUSDT, as the replay account keys its positions."""
    base, rest = symbol.split("/")
    return base + rest.split(":")[0]


def book_against_exchange(db: Database, server: ReplayServer, account: str) -> list[str]:
    """Every difference between the book (positions, orders, fills) and the replay account,
    in words; empty when they agree. Each client order id placed at most once, each filled
    order row placed at the exchange, each placement recorded as a filled row."""
    state = server.exchange.account.snapshot()
    held = {m: p["qty"] for m, p in state["positions"].items()}
    with db.connection() as conn:
        book = conn.execute(
            "SELECT symbol, quantity FROM positions WHERE account = %s AND quantity <> 0",
            (account,),
        ).fetchall()
        orders = conn.execute(
            "SELECT client_order_id, status, filled FROM orders WHERE account = %s", (account,)
        ).fetchall()
        fills = conn.execute(
            "SELECT o.client_order_id, f.quantity FROM fills f JOIN orders o ON o.id = f.order_id"
            " WHERE f.account = %s",
            (account,),
        ).fetchall()
        conn.commit()
    ours = {market_id(s): float(q) for s, q in book}
    problems = []
    for market in sorted(set(ours) | set(held)):
        mine, theirs = ours.get(market, 0.0), held.get(market, 0.0)
        if not math.isclose(mine, theirs, abs_tol=1e-9):
            problems.append(f"{market}: book holds {mine}, the exchange {theirs}")
    placements = state["placements"]
    for cid, times in sorted(placements.items()):
        if times != 1:
            problems.append(f"client order id {cid} placed {times} times at the exchange")
    filled = {cid for cid, status, qty in orders if status == "filled" and float(qty) > 0}
    for cid in sorted(set(placements) - filled):
        problems.append(f"order {cid} placed at the exchange but not a filled row in the book")
    for cid in sorted(filled - set(placements)):
        problems.append(f"order {cid} filled in the book but never placed at the exchange")
    for cid, status, _ in orders:
        if status in ("sent", "unknown"):
            problems.append(f"order {cid} still '{status}' in the book")
    fill_count: dict[str, int] = {}
    for cid, _ in fills:
        fill_count[cid] = fill_count.get(cid, 0) + 1
    for cid, n in sorted(fill_count.items()):
        if n != 1:
            problems.append(f"order {cid} has {n} fills in the book")
    return problems
