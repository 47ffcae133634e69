"""`PositionManager` end to end: recorded signals in real PostgreSQL, orders through the real
ccxt client over HTTP to the replay exchange (and through the paper broker)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.data.timeframes import parse_date_ms
from pipeline.exchange.retry import RetryPolicy
from pipeline.execution.broker import BUY, FILLED, REJECTED, SELL, BrokerError, OrderRequest
from pipeline.execution.ccxt_broker import CcxtBroker
from pipeline.execution.manager import Difference, PositionManager
from pipeline.execution.orders import client_order_id
from pipeline.execution.paper import PaperBroker
from pipeline.execution.risk import RiskConfig
from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.replay.faults import FaultPlan
from pipeline.replay.server import ReplayServer
from pipeline.signals.inference import FLAT, LONG, SHORT, Decision
from pipeline.store import trading
from pipeline.store.candles import upsert_candles
from pipeline.store.models import ModelRecord, save_model
from pipeline.store.signals import SignalRow, record_signal
from tests.helpers.replay import account, frozen_replay

KEY, SECRET = "manager-test-key-81c2", "manager-test-secret-4d7e"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
MARKETS = {BTC: "BTCUSDT", ETH: "ETHUSDT"}
EXCHANGE, TIMEFRAME, H = "binanceusdm", "1h", 3_600_000
T0 = parse_date_ms("2023-03-01T10:00:00Z")
FEE = 0.0005
FAST = RetryPolicy(attempts=4, backoff_s=0.01)


# -- set-up ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def opens(sample_dir: Path) -> dict[str, dict[int, float]]:
    """Candle open by open time (ms), per ccxt symbol, straight from the sample CSVs."""
    out = {}
    for symbol, market in MARKETS.items():
        frame = pd.read_csv(sample_dir / f"{market}.csv.gz")
        out[symbol] = dict(zip(frame["timestamp"].tolist(), frame["open"].tolist(), strict=True))
    return out


@pytest.fixture()
def replay(sample_dir: Path):
    with frozen_replay(sample_dir, T0, KEY, SECRET) as server:  # each step sets the clock
        yield server


def make_broker(server: ReplayServer) -> CcxtBroker:
    env = {"SIGNALS_API_KEY": KEY, "SIGNALS_API_SECRET": SECRET}
    broker = CcxtBroker.from_env(api_url=server.url, timeout_ms=1000, retry=FAST, environ=env)
    broker.exchange.enableRateLimit = False  # ccxt paces by Binance's weights: 2 s a listing
    return broker


def lot(quantity: float) -> float:
    """Rounded down to the replay markets' 0.001 step, as ccxt's amount_to_precision does."""
    return float(Decimal(repr(float(quantity))).quantize(Decimal("0.001"), rounding=ROUND_DOWN))


class Desk:
    """Signals recorded as the live job records them, executed at the replay clock."""

    def __init__(self, db, server: ReplayServer | None, sample_dir: Path):
        self.db, self.server = db, server
        with db.connection() as conn:
            self.model_id = save_model(
                conn,
                ModelRecord(
                    name="manager-test",
                    timeframe=TIMEFRAME,
                    config={},
                    features=["a", "b"],
                    scaler={},
                    data_window={},
                    metrics={},
                    seed=0,
                    checkpoint=checkpoint_bytes(torch.nn.Linear(2, 1).state_dict()),
                ),
            )
            for symbol, market in MARKETS.items():  # the candles _target checks for gaps
                frame = pd.read_csv(sample_dir / f"{market}.csv.gz")
                near = frame[
                    (frame["timestamp"] >= T0 - 24 * H) & (frame["timestamp"] < T0 + 48 * H)
                ]
                upsert_candles(conn, EXCHANGE, symbol, TIMEFRAME, near.reset_index(drop=True))

    def signal(self, symbol: str, candle_ms: int, side: int) -> SignalRow:
        p_up = {LONG: 0.8, SHORT: 0.2, FLAT: 0.5}[side]
        decision = Decision(
            model_id=self.model_id,
            market=MARKETS[symbol],
            timestamp=pd.Timestamp(candle_ms, unit="ms", tz="UTC"),
            probability_up=p_up,
            confidence=max(p_up, 1 - p_up),
            side=side,
            threshold=0.6,
            input_hash=f"{candle_ms:064d}",
        )
        with self.db.connection() as conn:
            return record_signal(
                conn,
                exchange=EXCHANGE,
                symbol=symbol,
                timeframe=TIMEFRAME,
                candle_ms=candle_ms,
                decision=decision,
                run_id=None,
                timings={},
            )

    def now(self, candle_ms: int) -> int:
        """A minute into the next candle, on the replay clock: market orders fill at its open."""
        now_ms = candle_ms + H + 60_000
        if self.server is not None:
            self.server.exchange.clock.set(now_ms, 1e-9)
        return now_ms

    def step(self, manager: PositionManager, symbol: str, candle_ms: int, side: int):
        signal = self.signal(symbol, candle_ms, side)
        return manager.execute(signal, now_ms=self.now(candle_ms))


@pytest.fixture()
def desk(db, replay, sample_dir) -> Desk:
    return Desk(db, replay, sample_dir)


def manager_for(db, broker, **risk) -> PositionManager:
    return PositionManager(db, broker, RiskConfig(**risk), EXCHANGE, TIMEFRAME, H)


def book(db, account_name: str = EXCHANGE) -> dict[str, trading.BookPosition]:
    with db.connection() as conn:
        return trading.book(conn, account_name)


def assert_book_is_the_exchange(db, broker) -> None:
    ours = {s: p for s, p in book(db, broker.name).items() if p.quantity != 0}
    theirs = broker.positions()
    assert set(ours) == set(theirs)
    for symbol, held in theirs.items():
        assert ours[symbol].quantity == pytest.approx(held.quantity, abs=1e-12)
        assert ours[symbol].entry_price == pytest.approx(held.entry_price)


def rows(db, sql: str, *params) -> list[tuple]:
    with db.connection() as conn:
        found = conn.execute(sql, params).fetchall()
        conn.commit()
    return found


ORDERS = """SELECT client_order_id, symbol, side, quantity, reduce_only, purpose, status,
                   filled, average_price, fee, reason, signal_id
            FROM orders ORDER BY id"""


# -- trading --------------------------------------------------------------------------------
def test_open_reverse_hold_and_close_after_the_horizon(db, replay, desk, opens) -> None:
    broker = make_broker(replay)
    manager = manager_for(db, broker, risk_fraction=0.1, leverage=3, horizon=2)
    c = [T0 + i * H for i in range(5)]
    o = opens[BTC]

    done = desk.step(manager, BTC, c[0], LONG)
    q1 = lot(0.3 * 10_000 / o[c[1]])
    assert (done.action, done.target, done.before) == ("opened", LONG, 0.0)
    assert done.after == pytest.approx(q1) and q1 > 0
    assert broker.positions()[BTC].entry_price == o[c[1]]  # the next candle's open
    assert account(replay)["settings"]["BTCUSDT"] == {"leverage": 3, "margin_type": "ISOLATED"}
    assert_book_is_the_exchange(db, broker)

    done = desk.step(manager, BTC, c[1], SHORT)
    wallet = 10_000 - FEE * q1 * o[c[1]] - FEE * q1 * o[c[2]] + q1 * (o[c[2]] - o[c[1]])
    q2 = lot(0.3 * wallet / o[c[2]])
    assert (done.action, done.target) == ("reversed", SHORT)
    assert [(r.status, r.filled, r.average_price) for r in done.orders] == [
        (FILLED, q1, o[c[2]]),
        (FILLED, q2, o[c[2]]),
    ]
    assert done.after == pytest.approx(-q2)
    assert_book_is_the_exchange(db, broker)

    done = desk.step(manager, BTC, c[2], FLAT)  # the short still holds: horizon 2
    assert (done.action, done.target, done.orders) == ("held", SHORT, [])
    assert_book_is_the_exchange(db, broker)

    done = desk.step(manager, BTC, c[3], FLAT)  # past the horizon: close
    assert (done.action, done.target, done.after) == ("closed", FLAT, 0.0)
    assert [(r.status, r.filled, r.average_price) for r in done.orders] == [(FILLED, q2, o[c[4]])]
    assert broker.positions() == {}
    assert_book_is_the_exchange(db, broker)
    assert account(replay)["wallet_balance"] == pytest.approx(
        wallet - FEE * q2 * o[c[2]] - FEE * q2 * o[c[4]] - q2 * (o[c[4]] - o[c[2]])
    )

    written = rows(db, ORDERS)
    assert [(r[2], r[4], r[5], r[6], r[7]) for r in written] == [
        (BUY, False, "open", "filled", q1),
        (SELL, True, "close", "filled", q1),
        (SELL, False, "open", "filled", q2),
        (BUY, True, "close", "filled", q2),
    ]
    assert written[0][3] == pytest.approx(0.3 * 10_000 / o[c[1]])  # as asked, before the lot
    fills = rows(db, "SELECT quantity, price, fee FROM fills ORDER BY order_id")
    assert fills == [
        (q1, o[c[1]], pytest.approx(FEE * q1 * o[c[1]])),
        (q1, o[c[2]], pytest.approx(FEE * q1 * o[c[2]])),
        (q2, o[c[2]], pytest.approx(FEE * q2 * o[c[2]])),
        (q2, o[c[4]], pytest.approx(FEE * q2 * o[c[4]])),
    ]
    ids = [r[0] for r in written]
    assert len(set(ids)) == 4
    model = desk.model_id
    assert ids[:2] == [  # derived from the signal: the same in any process, on any retry
        client_order_id(EXCHANGE, EXCHANGE, BTC, TIMEFRAME, c[0], model, "open"),
        client_order_id(EXCHANGE, EXCHANGE, BTC, TIMEFRAME, c[1], model, "close"),
    ]
    assert account(replay)["placements"] == dict.fromkeys(ids, 1)
    equity = rows(db, "SELECT count(*) FROM equity WHERE account = %s", EXCHANGE)
    assert equity == [(4,)]

    # A retried run that lost its candle mark sends nothing again: the recorded answer stands.
    again = manager_for(db, make_broker(replay), horizon=2)._send(
        desk.signal(BTC, c[1], SHORT), "open", SELL, q2, False, c[1]
    )
    assert (again.client_order_id, again.status, again.filled) == (ids[2], FILLED, q2)
    assert account(replay)["attempts"] == dict.fromkeys(ids, 1)
    assert len(rows(db, ORDERS)) == 4


def test_an_order_whose_answer_is_lost_is_placed_and_recorded_once(db, replay, desk, opens):
    replay.exchange.set_faults(
        FaultPlan.parse("lost:1", delay_s=0.1, path="/fapi/v1/order", method="POST")
    )
    broker = make_broker(replay)
    done = desk.step(manager_for(db, broker), BTC, T0, LONG)
    assert done.action == "opened" and replay.exchange.faults_served == 1
    (cid,) = [r[0] for r in rows(db, ORDERS)]
    state = account(replay)
    assert state["placements"] == {cid: 1} and state["attempts"] == {cid: 1}
    assert rows(db, "SELECT status, filled, average_price FROM orders") == [
        ("filled", done.after, opens[BTC][T0 + H])
    ]
    assert len(rows(db, "SELECT * FROM fills")) == 1
    assert_book_is_the_exchange(db, broker)


@pytest.mark.parametrize(
    ("spec", "reached"),
    [("lost:1.0", True), ("500:1.0", False)],  # placed but every answer lost / never placed
)
def test_an_order_left_unknown_is_resolved_by_the_next_run(
    db, replay, desk, opens, spec, reached
) -> None:
    """The broker fails past its bound: the row says 'unknown', the book has not moved, the
    run fails. The next run looks the client order id up first: a fill the exchange made is
    recorded (not sent again); an order it never got is sent once."""
    broker = make_broker(replay)
    manager = manager_for(db, broker)
    signal = desk.signal(BTC, T0, LONG)
    now_ms = desk.now(T0)
    broker.equity()  # markets loaded; then placement and look-ups fail, every time
    replay.exchange.set_faults(FaultPlan.parse(spec, delay_s=0.05, path="/fapi/v1/order"))
    with pytest.raises(BrokerError, match="outcome unknown"):
        manager.execute(signal, now_ms=now_ms)
    ((cid, status, reason),) = rows(db, "SELECT client_order_id, status, reason FROM orders")
    assert status == "unknown" and "outcome unknown after 4 attempts" in reason
    assert book(db).get(BTC) is None  # nothing recorded as filled
    assert account(replay)["placements"] == ({cid: 1} if reached else {})

    replay.exchange.set_faults(None)
    done = manager.execute(signal, now_ms=now_ms)  # the next run of the same candle
    assert done.action == ("held" if reached else "opened")
    assert account(replay)["placements"] == {cid: 1}
    assert rows(db, "SELECT status, filled, average_price FROM orders") == [
        ("filled", broker.positions()[BTC].quantity, opens[BTC][T0 + H])
    ]
    assert len(rows(db, "SELECT * FROM fills")) == 1
    assert_book_is_the_exchange(db, broker)
    assert manager.reconcile() == []


def test_a_rejected_order_is_recorded_and_the_book_stays_the_exchange(db, replay, desk) -> None:
    broker = make_broker(replay)
    manager = manager_for(db, broker, risk_fraction=0.45, daily_loss_limit=1.0)
    assert desk.step(manager, BTC, T0, LONG).action == "opened"
    assert desk.step(manager, ETH, T0, LONG).action == "opened"  # 90% of equity in margin
    account(replay, {"balance": 6_000})  # a big loss elsewhere
    done = desk.step(manager, BTC, T0 + H, SHORT)
    assert done.action == "rejected"
    assert done.note == "open refused: Margin is insufficient."
    close, opened = done.orders
    assert (close.status, opened.status, opened.reason) == (
        FILLED,
        REJECTED,
        "Margin is insufficient.",
    )
    assert done.after == 0.0 and BTC not in broker.positions()  # flat: the close went through
    assert_book_is_the_exchange(db, broker)
    last = rows(db, ORDERS)[-1]
    assert (last[5], last[6], last[7], last[10]) == (
        "open",
        "rejected",
        0.0,
        "Margin is insufficient.",
    )
    assert manager.reconcile() == []


@pytest.mark.parametrize("how", ["setting", "file"])
def test_the_kill_switch_flattens_everything_and_stops_trading_while_on(
    db, replay, desk, tmp_path, how
) -> None:
    broker = make_broker(replay)
    manager = manager_for(db, broker)
    desk.step(manager, BTC, T0, LONG)
    desk.step(manager, ETH, T0, SHORT)
    other = make_broker(replay)  # a resting order of another market, to be cancelled
    other.exchange.load_markets()
    other.exchange.create_order(BTC, "limit", "buy", 0.01, 10_000.0, {"newClientOrderId": "rest"})
    assert len(broker.positions()) == 2 and len(broker.open_orders()) == 1
    kill = tmp_path / "KILL_SWITCH"
    if how == "file":
        kill.touch()
        killed = manager_for(db, broker, kill_file=kill)
    else:
        killed = manager_for(db, broker, kill_switch=True)

    done = desk.step(killed, ETH, T0 + H, SHORT)
    assert done.action == "kill switch" and "kill switch on" in done.note
    assert sorted((r.status, r.client_order_id) for r in done.orders) == sorted(
        (FILLED, client_order_id(EXCHANGE, s, "flatten", T0 + 2 * H)) for s in (BTC, ETH)
    )
    assert broker.positions() == {} and broker.open_orders() == []
    assert other.exchange.fetch_order(None, BTC, {"origClientOrderId": "rest"})["status"] == (
        "canceled"
    )
    flattens = [r for r in rows(db, ORDERS) if r[5] == "flatten"]
    assert sorted((r[1], r[2], r[4], r[6]) for r in flattens) == [
        (BTC, SELL, True, "filled"),
        (ETH, BUY, True, "filled"),
    ]
    for cid, symbol, *_ in flattens:  # reduce-only at the exchange too
        assert other.exchange.fetch_order(None, symbol, {"origClientOrderId": cid})["reduceOnly"]
    assert_book_is_the_exchange(db, broker)
    with db.connection() as conn:
        state = trading.trading_state(conn, EXCHANGE)
    assert state.halted and state.halted_until_ms is None
    assert "kill switch on" in (state.halted_reason or "")

    # While it is on, a later signal trades nothing; switched off, trading resumes.
    placed = account(replay)["placed"]
    done = desk.step(killed, BTC, T0 + 2 * H, LONG)
    assert done.action == "kill switch" and done.orders == []
    assert account(replay)["placed"] == placed and broker.positions() == {}
    kill.unlink(missing_ok=True)
    done = desk.step(manager, BTC, T0 + 3 * H, LONG)
    assert done.action == "opened" and set(broker.positions()) == {BTC}


def test_reconciliation_reports_what_was_done_behind_the_managers_back(db, replay, desk) -> None:
    broker = make_broker(replay)
    manager = manager_for(db, broker)
    desk.step(manager, BTC, T0, LONG)
    assert manager.reconcile() == []
    other = make_broker(replay)
    assert other.place(OrderRequest("behind-1", ETH, BUY, 0.5)).status == FILLED
    other.exchange.create_order(BTC, "limit", "buy", 0.01, 10_000.0, {"newClientOrderId": "rest"})

    differences = manager.reconcile()
    assert differences == [
        Difference(ETH, "position", 0.0, 0.5),
        Difference(BTC, "open_order", None, "rest"),
    ]
    ok, recorded = rows(db, "SELECT ok, differences FROM reconciliations ORDER BY id")[-1]
    assert not ok and recorded == [d.to_json() for d in differences]
    assert manager.reconcile([ETH]) == [Difference(ETH, "position", 0.0, 0.5)]

    listings = replay.exchange.requests_by_method.get("GET /fapi/v1/openOrders", 0)
    attempts = account(replay)["attempts"]
    for symbol in (ETH, BTC):  # neither market trades while the book disagrees
        done = desk.step(manager, symbol, T0 + H, SHORT)
        assert (done.action, done.orders) == ("mismatch", [])
        assert "run `signals reconcile`" in done.note
    assert account(replay)["attempts"] == attempts
    # One per-market listing per execution (weight 1), not the all-markets one (weight 40).
    assert replay.exchange.requests_by_method["GET /fapi/v1/openOrders"] == listings + 2

    assert manager.adopt() == [Difference(ETH, "position", 0.0, 0.5)]
    eth = book(db)[ETH]
    assert eth.quantity == 0.5 and eth.entry_price == broker.positions()[ETH].entry_price
    assert manager.reconcile() == [Difference(BTC, "open_order", None, "rest")]
    other.exchange.cancel_order(None, BTC, {"origClientOrderId": "rest"})
    assert manager.reconcile() == []
    assert rows(db, "SELECT ok FROM reconciliations ORDER BY id DESC LIMIT 1") == [(True,)]
    done = desk.step(manager, ETH, T0 + 2 * H, SHORT)  # the adopted long is reversed
    assert done.action == "reversed" and done.before == 0.5
    assert_book_is_the_exchange(db, broker)


def test_the_daily_loss_limit_flattens_and_halts_until_the_next_utc_day(
    db, replay, desk, opens, sample_dir
) -> None:
    # BTC's open falls 1.75% from 21:00 to 22:00 on 2023-02-02: a long at 5x equity loses 9%.
    day = parse_date_ms("2023-02-02T00:00:00Z")
    c20, c21, c22, c23 = (day + h * H for h in (20, 21, 22, 23))
    with db.connection() as conn:
        frame = pd.read_csv(sample_dir / "BTCUSDT.csv.gz")
        near = frame[(frame["timestamp"] >= day) & (frame["timestamp"] < day + 48 * H)]
        upsert_candles(conn, EXCHANGE, BTC, TIMEFRAME, near.reset_index(drop=True))
    broker = make_broker(replay)
    manager = manager_for(
        db, broker, risk_fraction=1.0, leverage=5, max_notional=1e6, daily_loss_limit=0.05
    )

    assert desk.step(manager, BTC, c20, LONG).action == "opened"  # fills at 21:00's open
    done = desk.step(manager, BTC, c21, LONG)  # equity at 22:00's open: 9% down
    assert done.action == "daily loss limit" and "daily loss limit" in done.note
    assert done.equity < 0.95 * 10_000
    assert [(r.status, r.average_price) for r in done.orders] == [(FILLED, opens[BTC][c22])]
    assert broker.positions() == {} and done.after == 0.0
    assert_book_is_the_exchange(db, broker)
    with db.connection() as conn:
        state = trading.trading_state(conn, EXCHANGE)
    assert (state.halted, state.halted_until_ms) == (True, day + 24 * H)
    assert (state.day, state.day_start_equity) == (dt.date(2023, 2, 2), 10_000.0)

    placed = account(replay)["placed"]
    done = desk.step(manager, BTC, c22, LONG)  # its trade would open at 23:00: same day
    assert (done.action, done.orders) == ("halted", [])
    assert account(replay)["placed"] == placed

    done = desk.step(manager, BTC, c23, LONG)  # trades at 00:00 the next day: resumed
    assert done.action == "opened" and broker.positions()[BTC].quantity == done.after > 0
    with db.connection() as conn:
        state = trading.trading_state(conn, EXCHANGE)
    assert not state.halted and state.day == dt.date(2023, 2, 3)
    before_the_open = account(replay)["wallet_balance"] + done.orders[0].fee
    assert state.day_start_equity == pytest.approx(before_the_open)  # the new day's start


def test_a_stale_or_late_signal_sends_nothing(db, replay, desk) -> None:
    broker = make_broker(replay)
    manager = manager_for(db, broker)
    signal = desk.signal(BTC, T0, LONG)
    assert manager.execute(signal, now_ms=desk.now(T0)).action == "opened"
    attempts = account(replay)["attempts"]
    again = manager.execute(signal, now_ms=desk.now(T0))
    assert (again.action, again.orders) == ("stale", [])
    older = desk.step(manager, BTC, T0 - H, SHORT)
    assert older.action == "stale"

    late_signal = desk.signal(BTC, T0 + H, SHORT)
    late = manager.execute(late_signal, now_ms=T0 + 3 * H)  # the next candle has closed too
    assert (late.action, late.orders) == ("late", [])
    assert manager.execute(late_signal, now_ms=desk.now(T0 + H)).action == "stale"  # marked
    assert account(replay)["attempts"] == attempts
    assert_book_is_the_exchange(db, broker)
    assert broker.positions()[BTC].quantity > 0  # still long


def test_the_manager_over_the_paper_broker(db, sample_dir, opens) -> None:
    class Feed:
        at_ms = T0

        def quote(self, symbol: str) -> tuple[float, int]:
            candle = self.at_ms // H * H
            return float(opens[symbol][candle]), self.at_ms

    feed = Feed()
    desk = Desk(db, None, sample_dir)
    paper = PaperBroker(db, feed, fee=FEE, slippage_bps=2.0)
    manager = manager_for(db, paper, risk_fraction=0.2, leverage=2)
    feed.at_ms = desk.now(T0)
    done = manager.execute(desk.signal(ETH, T0, SHORT), now_ms=feed.at_ms)
    price = opens[ETH][T0 + H]
    assert done.action == "opened"
    assert done.after == pytest.approx(-0.4 * 10_000 / price)  # no lot on paper
    assert done.orders[0].average_price == pytest.approx(price * (1 - 2e-4))
    assert paper.positions()[ETH].quantity == pytest.approx(done.after)
    feed.at_ms = desk.now(T0 + H)
    done = manager.execute(desk.signal(ETH, T0 + H, LONG), now_ms=feed.at_ms)
    assert done.action == "reversed" and done.after > 0
    assert manager.reconcile() == []
    assert {s: p.quantity for s, p in book(db, "paper").items()} == {
        ETH: pytest.approx(paper.positions()[ETH].quantity)
    }


def test_an_order_row_left_sent_is_resolved_through_the_paper_broker_too(db, opens) -> None:
    """A process killed after writing its row: the paper broker filled the order (or never
    got it); the next reconciliation records the fill, and leaves the other row to be sent."""

    class Feed:
        def quote(self, symbol: str) -> tuple[float, int]:
            return float(opens[symbol][T0]), T0 + 60_000

    paper = PaperBroker(db, Feed(), fee=FEE)
    manager = manager_for(db, paper)
    with db.connection() as conn:
        for cid in ("filled-unheard", "never-sent"):
            trading.open_order_row(
                conn,
                account="paper",
                client_order_id=cid,
                symbol=BTC,
                side=BUY,
                quantity=0.01,
                reduce_only=False,
                purpose="open",
                signal_id=None,
            )
    paper.place(OrderRequest("filled-unheard", BTC, BUY, 0.01))
    assert manager.reconcile() == []
    statuses = rows(db, "SELECT client_order_id, status, filled FROM orders ORDER BY id")
    assert statuses == [("filled-unheard", "filled", 0.01), ("never-sent", "sent", 0.0)]
    assert book(db, "paper")[BTC].quantity == pytest.approx(0.01)
