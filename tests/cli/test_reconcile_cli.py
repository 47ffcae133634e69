"""`signals reconcile` as an operator runs it: the real `signals` process, the ccxt broker
over HTTP against the replay exchange, the book in the test's PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import BUY, OrderRequest
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.execution.manager import PositionManager
from pipeline.execution.risk import RiskConfig
from pipeline.store import trading
from pipeline.store.database import Database
from tests.helpers.replay import frozen_replay
from trials.replay_desk import EXCHANGE, TIMEFRAME, H, record_side, save_trial_model

KEY, SECRET = "reconcile-cli-key-7a41", "reconcile-cli-secret-0e9c"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = parse_date_ms("2023-03-01T10:00:00Z")


def reconcile(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "reconcile", *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def book(db: Database) -> dict[str, float]:
    with db.connection() as conn:
        return {s: p.quantity for s, p in trading.book(conn, EXCHANGE).items() if p.quantity}


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, T0, KEY, SECRET) as server:
        yield server


def test_reconcile_from_the_command_line(db, database_url, replay, tmp_path) -> None:
    keys = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    env = {
        **keys,
        "SIGNALS_DATABASE_URL": database_url,
        "SIGNALS_BROKER": "ccxt",
        "SIGNALS_API_URL": replay.url,
        "SIGNALS_HOME": str(tmp_path),
    }
    broker = CcxtBroker.from_env(
        api_url=replay.url,
        timeout_ms=2000,
        retry=RetryPolicy(attempts=3, backoff_s=0.01),
        environ=keys,
    )
    manager = PositionManager(db, broker, RiskConfig(), EXCHANGE, TIMEFRAME, H)
    model_id = save_trial_model(db)
    replay.exchange.clock.set(T0 + H + 60_000, 1e-9)
    done = manager.execute(record_side(db, model_id, BTC, T0, 1), now_ms=T0 + H + 60_000)
    assert done.action == "opened"
    # A process killed after writing its order row: the row says 'sent', the exchange filled
    # it. `reconcile` looks the client order id up first and records the fill.
    with db.connection() as conn:
        row = trading.open_order_row(
            conn,
            account=EXCHANGE,
            client_order_id="killed-1",
            symbol=BTC,
            side=BUY,
            quantity=0.01,
            reduce_only=False,
            purpose="open",
            signal_id=None,
        )
    broker.place(OrderRequest("killed-1", BTC, BUY, 0.01))
    held = broker.positions()[BTC].quantity

    agreed = reconcile(env)
    assert agreed.returncode == 0, agreed.stderr
    assert "account binanceusdm: book and broker agree" in agreed.stdout
    assert book(db) == {BTC: pytest.approx(held)}
    with db.connection() as conn:
        (status,) = conn.execute("SELECT status FROM orders WHERE id = %s", (row.id,)).fetchone()
    assert status == "filled"

    # A position opened behind the manager's back: named, exit 1, the book untouched.
    assert broker.place(OrderRequest("behind-1", ETH, BUY, 0.5)).filled == 0.5
    differs = reconcile(env)
    assert differs.returncode == 1, differs.stderr
    assert f"{ETH} position: book 0.0, broker 0.5" in differs.stdout
    assert book(db) == {BTC: pytest.approx(held)}

    adopted = reconcile(env, "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert f"{ETH} position: book 0.0, broker 0.5" in adopted.stdout
    assert "the book now holds what the broker holds" in adopted.stdout
    theirs = {s: p.quantity for s, p in broker.positions().items()}
    assert book(db) == pytest.approx(theirs) and set(theirs) == {BTC, ETH}
    assert manager.reconcile() == []
    for secret in (KEY, SECRET):  # the keys appear in no output
        assert all(secret not in out.stdout + out.stderr for out in (agreed, differs, adopted))
