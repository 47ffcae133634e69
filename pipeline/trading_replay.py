"""Live trading replayed: the real sensor and live job over the replay exchange, then the
same model's backtest over the same candles, compared decision by decision and trade by trade
(a portfolio model: decision by decision and fill by fill, `replay_portfolio`).

`LiveReplay` drives it the way the daemon does, one closed candle at a time: move the replay
clock just past the candle's close, evaluate `new_candle_sensor` with its saved cursor, launch
each requested run whose run key has not run yet (the daemon's rule, imitated here: this
harness skips known keys itself, so a test through it cannot show that Dagster does), save the
cursor. The runs are real Dagster runs of `live_inference_job` (in-process), against real
PostgreSQL and real ccxt over HTTP. `signals live --replay` and the end-to-end tests use it.
That the real `dagster-daemon` deduplicates run keys, through kills and an older cursor, is
what trials/daemon_kills.py and tests/trials/test_daemon_kills.py check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.engine import run_backtest
from pipeline.data.csv_source import CandleFolder
from pipeline.data.schema import validate_candles
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.exchange.markets import market_id
from pipeline.inference_job import live_inference_job
from pipeline.model.operating import OperatingPoint
from pipeline.portfolio.model import MODEL_NAME as PORTFOLIO_MODEL
from pipeline.portfolio_live import portfolio_live_job
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.sensors import PORTFOLIO, new_candle_sensor
from pipeline.settings import Settings
from pipeline.signals.backtest_path import backtest_path
from pipeline.signals.candle import factor_basket
from pipeline.store import candles as candle_store
from pipeline.store import models as model_store
from pipeline.store import trading
from pipeline.store.database import Database, fresh_database, open_database, resolve_url
from pipeline.store.signals import load_signals

RUN_KEY_TAG = "dagster/run_key"
# A portfolio replay's fills against the backtest's: the relative drift an account that rounds
# its orders to the exchange's amount step may show beside the backtest's exact quantities.
DRIFT = 1e-4


def seed_candles(
    db: Database,
    folder: CandleFolder,
    exchange_id: str,
    symbols: list[str],
    timeframes: list[str],
    until_ms: int,
) -> int:
    """Store every candle of the folder opened before `until_ms` (the history a live system
    has when it starts); returns the rows written."""
    written = 0
    for symbol in symbols:
        for timeframe in timeframes:
            frame = folder.read(symbol, timeframe)
            frame = frame[frame["timestamp"] < until_ms].reset_index(drop=True)
            validate_candles(frame, symbol, timeframe)
            with db.connection() as conn:
                written += candle_store.upsert_candles(
                    conn, exchange_id, symbol, timeframe, frame
                ).inserted
    return written


def install_model(db: Database, record: model_store.ModelRecord, note: dict[str, Any]) -> int:
    """Store a model as a candidate in `db` and make it production there; returns its id."""
    copy = model_store.ModelRecord(
        name=record.name,
        timeframe=record.timeframe,
        config=record.config,
        features=record.features,
        scaler=record.scaler,
        data_window=record.data_window,
        metrics=record.metrics,
        seed=record.seed,
        checkpoint=record.checkpoint,
        epochs=record.epochs,
        members=record.members,  # an ensemble's networks
    )
    with db.connection() as conn:
        model_id = model_store.save_model(conn, copy)
        model_store.promote(conn, model_id, note)
    return model_id


def pick_model(
    db: Database, timeframe: str, model_id: int | None = None, name: str | None = None
) -> tuple[model_store.ModelRecord, str]:
    """The model a replay trades, and why that one: the id asked for, else the production
    model of `name` (default: the barrier strategy's `lstm`), else the newest candidate (said
    plainly: the gate has not approved it)."""
    from pipeline.model.contract import MODEL_NAME as BARRIER_MODEL

    name = name or BARRIER_MODEL
    with db.connection() as conn:
        if model_id is not None:
            return model_store.load_model(conn, model_id), "chosen by id"
        record = model_store.production_model(conn, name, timeframe)
        if record is not None:
            return record, "the production model"
        newest = model_store.newest_model_id(conn, name, timeframe)
        if newest is None:
            raise LookupError(
                "no model to replay: `make run` trains one (or pass a model id from this store)"
            )
        record = model_store.load_model(conn, newest)
    return record, "the newest candidate (NOT promoted by the gate: a demonstration only)"


def replay_resources(
    database_url: str,
    api_url: str,
    home: str,
    *,
    exchange: str = DEFAULT_EXCHANGE,
    since: str = "2019-09-01",
    fee: float = 0.0005,
    balance: float = 10_000.0,
    risk_fraction: float = 0.5,
    retry_attempts: int = 5,
    retry_backoff_s: float = 0.5,
    account_per_market: bool = True,
    broker: str = "paper",
) -> dict[str, Any]:
    """Resources for a replay: the replay exchange for candles and prices, one paper account
    per market (each compounds alone, like its backtest; a portfolio shares one), no cap and no
    daily limit (the backtest has neither; both are tested on their own). `broker="ccxt"`
    trades the replay exchange's own account through ccxt instead (one account: its orders
    are rounded to the market's lot and tick, and its resting exits are the exchange's)."""
    from pipeline.replay.signing import DEFAULT_API_KEY, DEFAULT_API_SECRET
    from resources.broker import BrokerResource
    from resources.database import PostgresResource
    from resources.exchange import CandleSourceResource

    return {
        "database": PostgresResource(url=database_url),
        "candle_source": CandleSourceResource(
            source="ccxt",
            exchange=exchange,
            api_url=api_url,
            since=since,
            retry_attempts=retry_attempts,
            retry_backoff_s=retry_backoff_s,
        ),
        "broker": BrokerResource(
            kind=broker,
            api_key=DEFAULT_API_KEY if broker == "ccxt" else "",
            api_secret=DEFAULT_API_SECRET if broker == "ccxt" else "",
            api_url=api_url,
            exchange=exchange,
            home=home,
            fee=fee,
            initial_balance=balance,
            risk_fraction=risk_fraction,
            max_notional=1e15,
            daily_loss_limit=1.0,
            account_per_market=account_per_market,
        ),
    }


@dataclass
class TickOutcome:
    close_ms: int
    requested: list[str]
    launched: list[str]
    skipped: str | None
    failures: list[str] = field(default_factory=list)


class LiveReplay:
    """The daemon's loop, candle by candle, over a replay exchange."""

    def __init__(
        self,
        resources: dict[str, Any],
        exchange: ReplayExchange,
        instance: dg.DagsterInstance | None = None,
        after_close_ms: int = 60_000,
    ):
        # The sensor's job: live_inference_job per market, or portfolio_live_job per candle.
        job = portfolio_live_job if PORTFOLIO else live_inference_job
        self.defs = dg.Definitions(jobs=[job], sensors=[new_candle_sensor], resources=resources)
        self.job = self.defs.resolve_job_def(job.name)
        self.resources = resources
        self.exchange = exchange
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.after_close_ms = after_close_ms

    def launched(self, key: str) -> bool:
        return bool(self.instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: key})))

    def evaluate_sensor(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources
        )
        return new_candle_sensor(context)

    def tick(
        self, close_ms: int, after_ms: int | None = None, markets: set[str] | None = None
    ) -> TickOutcome:
        """The clock `after_ms` past `close_ms`; one sensor evaluation and its runs (with
        `markets`, only the runs of those market ids: a test that follows one market)."""
        offset = self.after_close_ms if after_ms is None else after_ms
        self.exchange.clock.set(close_ms + offset, speed=1.0)
        result = self.evaluate_sensor()
        requests = list(result.run_requests or [])
        skip = result.skip_reason.skip_message if result.skip_reason else None
        outcome = TickOutcome(close_ms, [r.run_key for r in requests], [], skip)
        for request in requests:
            if self.launched(request.run_key):
                continue
            if markets is not None and request.tags.get("market") not in markets:
                continue
            run = self.job.execute_in_process(
                run_config=request.run_config,
                tags={**request.tags, RUN_KEY_TAG: request.run_key},
                instance=self.instance,
                raise_on_error=False,
            )
            outcome.launched.append(request.run_key)
            if not run.success:
                outcome.failures.append(request.run_key)
        if result.cursor is not None:  # the daemon saves it once the tick's runs are launched
            self.cursor = result.cursor
        return outcome

    def run(
        self, closes: list[int], on_tick: Callable[[TickOutcome], None] | None = None
    ) -> list[TickOutcome]:
        outcomes = []
        for close_ms in closes:
            outcomes.append(self.tick(close_ms))
            if on_tick:
                on_tick(outcomes[-1])
        return outcomes


@dataclass
class ParityReport:
    candles: int
    live_decisions: int
    backtest_decisions: int
    compared: int
    decision_mismatches: list[dict[str, Any]]
    probability_max_abs_diff: float
    trades_compared: int
    trade_max_abs_diff: float
    live_return: float  # compounded over the round trips live completed
    backtest_return: float  # compounded over the backtest trades that completed by then
    live_trades: list[dict[str, Any]]
    backtest_trades: list[dict[str, Any]]
    backtest_only_trades: int = 0  # completed in the backtest, never traded live
    # Trades whose exit kind or exit price differ (a barrier model: stop, take-profit, time
    # limit or reversal, at the backtest's price).
    exit_mismatches: list[dict[str, Any]] = field(default_factory=list)

    # The largest difference of a trade's return that counts as equal: 1e-12 on a paper
    # account per market; the tick's share of the price on an exchange account (see `parity`).
    trade_tolerance: float = 1e-12

    @property
    def same_trades(self) -> bool:
        return (
            self.backtest_only_trades == 0
            and self.trade_max_abs_diff < self.trade_tolerance
            and not self.exit_mismatches
        )

    @property
    def identical_decisions(self) -> bool:
        return not self.decision_mismatches and self.compared == self.backtest_decisions

    def to_json(self) -> dict[str, Any]:
        return {
            "candles": self.candles,
            "live_decisions": self.live_decisions,
            "backtest_decisions": self.backtest_decisions,
            "compared": self.compared,
            "decision_mismatches": self.decision_mismatches,
            "probability_max_abs_diff": self.probability_max_abs_diff,
            "trades_compared": self.trades_compared,
            "trade_net_return_max_abs_diff": self.trade_max_abs_diff,
            "trade_tolerance": self.trade_tolerance,
            "backtest_only_trades": self.backtest_only_trades,
            "exit_mismatches": self.exit_mismatches,
            "live_return_closed_trades": self.live_return,
            "backtest_return_same_trades": self.backtest_return,
        }


def live_trades(fills: pd.DataFrame, initial_equity: float, step_ms: int) -> list[dict[str, Any]]:
    """Round trips from the fills of one market, oldest first: entry candle (the open it
    filled at), side, how it exited (the closing order's purpose: close, time, reverse, stop,
    take_profit) and at what price, and net return on the equity before entry, after both
    fees."""
    trades, equity, held, entry = [], initial_equity, 0.0, None
    for fill in fills.itertuples():
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        if held == 0:
            entry = {
                "entry_ms": int(fill.filled_at_ms) // step_ms * step_ms,
                "side": 1 if signed > 0 else -1,
                "price": fill.price,
                "quantity": abs(signed),
                "fee": fill.fee,
                "equity": equity,
            }
            held = signed
            continue
        assert entry is not None
        pnl = entry["side"] * entry["quantity"] * (fill.price - entry["price"])
        fees = entry["fee"] + fill.fee
        equity += pnl - fees
        held += signed
        if abs(held) > 1e-12:
            raise ValueError("partial closes are not expected from the position manager")
        trades.append(
            {
                "entry_ms": entry["entry_ms"],
                "side": entry["side"],
                "entry_price": entry["price"],
                "exit_price": fill.price,
                "exit_kind": fill.purpose,
                "exit_ms": int(fill.filled_at_ms),
                "net_return": (pnl - fees) / entry["equity"],
                "notional_return": (pnl - fees) / (entry["quantity"] * entry["price"]),
            }
        )
        held, entry = 0.0, None
    return trades


def parity(
    db: Database,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    timeframes: list[str],
    candles: list[int],
    costs: BacktestConfig,
    account: str,
    initial_equity: float,
    tick: float = 0.0,
) -> ParityReport:
    """Compare the live record of `candles` (open times) with the backtest path. The candle
    after the last one must be stored too: the last decision acts at its open.

    `tick` > 0: an exchange account, whose orders are rounded to the market's lot and its
    trigger prices to its tick, and whose one equity sizes every market. Its trades are then
    compared per unit of notional (net return on the entry notional, which no sizing moves)
    and their exit prices to half a tick; with 0 (a paper account per market), exactly."""
    step = timeframe_ms(timeframe)
    with db.connection() as conn:
        live = [
            s
            for s in load_signals(conn, exchange_id, symbol, timeframe, mode="production")
            if candles[0] <= s["candle_ms"] <= candles[-1]
        ]
        if not live:
            raise ValueError(f"no live signals recorded for {symbol} {timeframe} in the period")
        record = model_store.load_model(conn, live[0]["model_id"])
        # The backtest path: the features frame with labels → windows → predict → replay.
        path = backtest_path(
            conn, exchange_id, symbol, timeframe, timeframes, record, candles[0], candles[-1]
        )
        fills = pd.DataFrame(
            trading.fills(conn, account, symbol),
            columns=["side", "quantity", "price", "fee", "filled_at_ms", "purpose"],
        )
    inputs, loaded, backtest = path.inputs, path.loaded, path.decisions
    mismatches, diffs = [], []
    for s in live:
        if s["candle_ms"] not in backtest:
            continue
        p, b_side = backtest[s["candle_ms"]]
        diffs.append(abs(p - s["probability_up"]))
        if b_side != s["side"] or p != s["probability_up"]:
            mismatches.append(
                {
                    "candle_ms": s["candle_ms"],
                    "live": s["side"],
                    "backtest": b_side,
                    "live_p": s["probability_up"],
                    "backtest_p": p,
                }
            )
    compared = sum(1 for s in live if s["candle_ms"] in backtest)

    # Replay: the history (barrier widths need the volatility before the first decision),
    # the decided candles and the one after, so the last decision can act.
    base = inputs.base
    period = base[base["timestamp"] <= candles[-1] + step].reset_index(drop=True)
    by_candle = {s["candle_ms"]: s["side"] for s in live if s["candle_ms"] >= candles[0]}
    decisions = np.array([by_candle.get(int(t), 0) for t in period["timestamp"]], dtype=np.int8)
    # The model's exits; funding off, as the replay exchange charges none.
    exits = replace(costs.exiting_by(loaded.label), funding_rate=0.0)
    result = run_backtest(period, decisions, exits)
    bt = result.trades
    live_done = live_trades(fills, initial_equity, step)
    bt_trades = [
        {
            "entry_ms": int(r.entry_time.value // 1_000_000),
            "side": int(r.side),
            "entry_price": float(r.entry_price),
            "exit_price": float(r.exit_price),
            "exit_kind": live_exit_kind(str(r.exit_kind), int(r.side)),
            "exit_ms": int(r.exit_time.value // 1_000_000),
            "net_return": float(r.net_return),
            "notional_return": float(r.net_return) / exits.exposure,
        }
        for r in bt.itertuples()
    ]
    # Backtest trades live must have completed too: those exiting by the open after the last
    # decided candle (the last one may still be open live, and the replay closes it at the end).
    end_of_data = int(period["timestamp"].iloc[-1]) + step  # the replay's forced last exit
    completed = [
        t for t in bt_trades if t["exit_ms"] <= candles[-1] + step and t["exit_ms"] != end_of_data
    ]
    by_entry = {t["entry_ms"]: t for t in completed}
    pairs = [(t, by_entry.get(t["entry_ms"])) for t in live_done]
    measure = "notional_return" if tick > 0 else "net_return"
    trade_diffs = [abs(t[measure] - b[measure]) if b else math.inf for t, b in pairs]
    live_entries = {t["entry_ms"] for t in live_done}
    backtest_only = [t for t in completed if t["entry_ms"] not in live_entries]
    barriers = loaded.label.barrier_k is not None
    exit_mismatches = [
        {"entry_ms": t["entry_ms"], "live": (t["exit_kind"], t["exit_price"]), "backtest": b}
        for t, b in pairs
        if b is not None
        and (
            abs(t["exit_price"] - b["exit_price"]) > tick / 2 * (1 + 1e-9)
            or (barriers and t["exit_kind"] != b["exit_kind"])
        )
    ]
    # On an exchange account a trade may differ by its prices' rounding to the tick.
    lowest = min((t["entry_price"] for t in live_done), default=1.0)
    tolerance = 1e-12 + 4 * tick / lowest
    return ParityReport(
        candles=len(candles),
        live_decisions=len(live),
        backtest_decisions=len(backtest),
        compared=compared,
        decision_mismatches=mismatches,
        probability_max_abs_diff=max(diffs, default=0.0),
        trades_compared=len(pairs),
        trade_max_abs_diff=max(trade_diffs, default=0.0),
        trade_tolerance=tolerance,
        live_return=float(np.prod([1 + t["net_return"] for t in live_done]) - 1),
        backtest_return=float(np.prod([1 + b["net_return"] for b in completed]) - 1),
        backtest_only_trades=len(backtest_only),
        live_trades=live_done,
        backtest_trades=bt_trades,
        exit_mismatches=exit_mismatches,
    )


# A backtest exit (`pipeline.backtest.rows.EXIT_NAMES`) as the live order that makes it:
# for a long the upper barrier is its take-profit, for a short its stop; both in one candle is
# the stop (filled first).
_LIVE_EXIT = {
    ("upper barrier", 1): "take_profit",
    ("upper barrier", -1): "stop",
    ("lower barrier", 1): "stop",
    ("lower barrier", -1): "take_profit",
    ("both (stop first)", 1): "stop",
    ("both (stop first)", -1): "stop",
}


def live_exit_kind(backtest_kind: str, side: int) -> str:
    """The purpose of the live order that exits as the backtest's `backtest_kind` does."""
    if backtest_kind == "time limit":
        return "time"
    if backtest_kind == "reversed":
        return "reverse"
    return _LIVE_EXIT.get((backtest_kind, side), backtest_kind)


class Ticker(Protocol):
    """A progress bar's one needed method (tqdm has it)."""

    def update(self, n: int = 1) -> object: ...


class _NoTicker:
    def update(self, n: int = 1) -> object:
        return None


def drive_replay(
    settings: Settings,
    exchange: ReplayExchange,
    database_url: str,
    closes: list[int],
    progress: Callable[[int], AbstractContextManager[Ticker]] | None,
    **account: Any,
) -> list[str]:
    """Serve `exchange` and run the daemon's loop over `closes`; the run keys that failed.
    `account`: the paper account's settings (`replay_resources`)."""
    with ReplayServer(exchange) as server:
        resources = replay_resources(
            database_url,
            server.url,
            str(settings.home),
            exchange=settings.exchange,
            since=settings.since,
            **account,
        )
        replay = LiveReplay(resources, exchange)
        with (progress or (lambda _: nullcontext(_NoTicker())))(len(closes)) as bar:
            outcomes = replay.run(closes, on_tick=lambda _: bar.update(1))
    return [key for o in outcomes for key in o.failures]


@dataclass(frozen=True)
class ReplayOutcome:
    """What `replay_live` found: the runs that failed and each market's parity report."""

    candles: int
    symbols: list[str]
    failures: list[str]
    reports: dict[str, ParityReport]

    @property
    def broken(self) -> list[str]:
        """Markets whose live decisions or trades differ from the backtest."""
        return [s for s, r in self.reports.items() if not (r.identical_decisions and r.same_trades)]


def replay_live(
    settings: Settings,
    data_dir: str | Path | None,
    start: str,
    candles: int,
    *,
    model_id: int | None = None,
    threshold: float | None = None,
    risk_fraction: float = 0.5,
    fee: float = 0.0005,
    balance: float = 10_000.0,
    broker: str = "paper",
    log: Callable[[str], None] = lambda message: None,
    progress: Callable[[int], AbstractContextManager[Ticker]] | None = None,
) -> ReplayOutcome:
    """`signals live --replay`: replay `candles` candles from `start` through the real sensor
    and live job in a fresh `signals_replay` database, then compare each market with its
    backtest. The configured store is only read (for the model); `log` hears the steps.
    `broker="ccxt"` trades the replay exchange's own account through ccxt (resting exits at
    the exchange) instead of a paper account per market."""
    data_dir = data_dir or settings.data_dir
    if not data_dir:
        raise ValueError("--data-dir (or SIGNALS_DATA_DIR) is needed: the candles to replay")
    timeframe = settings.base_timeframe
    step = timeframe_ms(timeframe)
    start_ms = parse_date_ms(start) // step * step
    if candles < 2:
        raise ValueError("--candles must be at least 2")
    folder = CandleFolder(data_dir)
    symbols = list(settings.markets)
    missing = [s for s in symbols if s not in folder.symbols()]
    if missing:
        raise ValueError(f"{data_dir} has no candles for {', '.join(missing)}")

    record, why = pick_model(open_database(settings), timeframe, model_id)
    log(f"replaying model {record.id}, {why}")
    # The model's factor basket is seeded too, even markets not traded here.
    seeded = list(dict.fromkeys([*symbols, *factor_basket(record)]))
    missing = [s for s in seeded if s not in folder.symbols()]
    if missing:
        raise ValueError(
            f"{data_dir} has no candles for {', '.join(missing)} (model {record.id}'s basket)"
        )

    url = fresh_database(resolve_url(settings), "signals_replay")
    db = Database(url)
    timeframes = list(settings.timeframes)
    log(f"seeding candles before {start} into database signals_replay …")
    seed_candles(db, folder, settings.exchange, seeded, timeframes, start_ms)
    note: dict[str, Any] = {"reason": "signals live --replay", "source_model": record.id}
    if threshold is not None:  # the replay database's copy only; the store is untouched
        fixed = OperatingPoint(threshold=threshold)
        record.config = {**record.config, "threshold": threshold, "operating": fixed.to_json()}
        note["threshold"] = threshold
        log(f"confidence threshold set to {threshold} for this replay")
    install_model(db, record, note)
    exchange = ReplayExchange(data_dir, ReplayClock(start_ms, speed=1.0), balance=balance)
    closes = [start_ms + (k + 1) * step for k in range(candles)]
    sizing = risk_fraction
    if broker == "ccxt" and len(symbols) > 1:
        # One exchange account for every market: each position gets its share of the margin,
        # so that every market may hold one at once (else the exchange refuses entries for
        # margin that the per-market backtest never lacks). Trades compare per unit of
        # notional, which the sizing does not move.
        sizing = risk_fraction / len(symbols)
        log(f"one account for {len(symbols)} markets: {sizing:.3g} of equity per position")
    failures = drive_replay(
        settings,
        exchange,
        url,
        closes,
        progress,
        fee=fee,
        balance=balance,
        risk_fraction=sizing,
        broker=broker,
    )
    # The candle after the last decided one: the backtest acts on the last decision at its open.
    seed_candles(db, folder, settings.exchange, seeded, timeframes, closes[-1] + step)
    costs = BacktestConfig(timeframe=timeframe, fee=fee, position_size=risk_fraction)
    decided = [c - step for c in closes]
    reports = {}
    for symbol in symbols:
        on_exchange = broker == "ccxt"
        reports[symbol] = parity(
            db,
            settings.exchange,
            symbol,
            timeframe,
            timeframes,
            decided,
            costs,
            settings.exchange if on_exchange else f"paper-{market_id(symbol)}",
            balance,
            tick=float(exchange.market.rules[market_id(symbol)].tick) if on_exchange else 0.0,
        )
    db.close()
    return ReplayOutcome(len(closes), symbols, failures, reports)


@dataclass
class PortfolioParity:
    """A portfolio model's live record against its backtest over the same candles."""

    candles: int
    live_decisions: int
    compared: int
    decision_mismatches: list[dict[str, Any]]
    score_max_abs_diff: float
    live_fills: int
    backtest_fills: int
    matched_fills: int
    fill_mismatches: list[dict[str, Any]]
    quantity_max_steps: float  # largest |live − backtest quantity| in the market's amount steps
    quantity_max_rel_diff: float
    price_max_abs_diff: float
    live_equity: float
    backtest_equity: float
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical_decisions(self) -> bool:
        return not self.decision_mismatches and self.compared == self.live_decisions > 0

    @property
    def same_fills(self) -> bool:
        return not self.fill_mismatches and self.matched_fills == self.backtest_fills

    def to_json(self) -> dict[str, Any]:
        return {
            "candles": self.candles,
            "live_decisions": self.live_decisions,
            "compared": self.compared,
            "identical_decisions": self.identical_decisions,
            "decision_mismatches": self.decision_mismatches,
            "score_max_abs_diff": self.score_max_abs_diff,
            "live_fills": self.live_fills,
            "backtest_fills": self.backtest_fills,
            "matched_fills": self.matched_fills,
            "same_fills": self.same_fills,
            "fill_mismatches": self.fill_mismatches,
            "quantity_max_steps": self.quantity_max_steps,
            "quantity_max_rel_diff": self.quantity_max_rel_diff,
            "price_max_abs_diff": self.price_max_abs_diff,
            "live_equity": self.live_equity,
            "backtest_equity": self.backtest_equity,
            "fills": self.fills,
        }


def _same(a: float | None, b: float) -> bool:
    """Bit-equal floats, a missing value matching NaN."""
    return (a is None and math.isnan(b)) or (a is not None and a == b)


def portfolio_parity(
    db: Database,
    exchange_id: str,
    timeframe: str,
    timeframes: list[str],
    decided: list[int],
    fee: float,
    account: str,
    balance: float,
    steps: dict[str, float],
) -> PortfolioParity:
    """Compare the live portfolio decisions of the candles `decided` (open times) and the
    account's fills with the backtest path over the same stored candles: scores, target
    weights and orders bit for bit; every fill at the same open, market, side and price, its
    quantity within two amount steps of the backtest's (the exchange's precision, `steps`)
    and the account's drift from that rounding (`DRIFT` of the quantity).
    The backtest charges the paper account's fee and no funding, as the paper account does."""
    from pipeline.backtest.panel import panel
    from pipeline.backtest.portfolio import PortfolioCosts, run_portfolio_backtest
    from pipeline.signals.portfolio_path import portfolio_path
    from pipeline.store import portfolio as portfolio_store

    step = timeframe_ms(timeframe)
    first, last = decided[0], decided[-1]
    with db.connection() as conn:
        record, _ = pick_model(db, timeframe, name=PORTFOLIO_MODEL)
        live = [
            d
            for d in portfolio_store.decisions(conn, int(record.id), exchange_id, timeframe)
            if first <= d.candle_ms <= last and d.mode == "production"
        ]
        path = portfolio_path(conn, exchange_id, timeframe, timeframes, record, first, last)
        fills = {symbol: trading.fills(conn, account, symbol) for symbol in path.markets}
    row_of = {int(t): k for k, t in enumerate(path.timestamps)}
    mismatches: list[dict[str, Any]] = []
    diffs = []
    for d in live:
        k = row_of.get(d.candle_ms)
        if k is None:
            continue
        b = path.decisions
        for j, market in enumerate(path.markets):
            live_score, bt_score = d.scores[j], float(path.scores[k, j])
            if live_score is not None and math.isfinite(bt_score):
                diffs.append(abs(live_score - bt_score))
            same = (
                _same(live_score, bt_score)
                and d.targets[j] == float(b.targets[k, j])
                and d.orders[j] == bool(b.orders[k, j])
            )
            if not same:
                mismatches.append(
                    {
                        "candle_ms": d.candle_ms,
                        "market": market,
                        "live": {
                            "score": live_score,
                            "target": d.targets[j],
                            "ordered": d.orders[j],
                        },
                        "backtest": {
                            "score": bt_score,
                            "target": float(b.targets[k, j]),
                            "ordered": bool(b.orders[k, j]),
                        },
                    }
                )
    compared = sum(1 for d in live if d.candle_ms in row_of)
    # The backtest over the decided candles and the one after (the last decision's fills).
    prices = panel(path.candles, timeframe, first, last + step)
    n = len(prices.timestamps)
    targets = np.zeros((n, len(path.markets)))
    orders = np.zeros((n, len(path.markets)), dtype=bool)
    targets[: len(path.timestamps)] = path.decisions.targets
    orders[: len(path.timestamps)] = path.decisions.orders
    result = run_portfolio_backtest(
        prices, targets, orders, PortfolioCosts(fee=fee, funding_rate=0.0), funding=None
    )
    backtest = {
        (int(r.time.value // 1_000_000), str(r.market)): (
            float(r.quantity) * balance,
            float(r.price),
        )
        for r in result.fills.itertuples()
    }
    live_net: dict[tuple[int, str], list[float]] = {}
    for symbol, rows in fills.items():
        for side, quantity, price, _fee, at_ms, _purpose in rows:
            key = (int(at_ms) // step * step, symbol)
            signed = quantity if side == "buy" else -quantity
            entry = live_net.setdefault(key, [0.0, price])
            entry[0] += signed
    fill_mismatches, records = [], []
    max_steps = max_rel = max_price = 0.0
    for key in sorted(set(backtest) | set(live_net)):
        bt = backtest.get(key)
        lv = live_net.get(key)
        record_row = {"open_ms": key[0], "market": key[1], "live": lv, "backtest": bt}
        records.append(record_row)
        if bt is None or lv is None:
            fill_mismatches.append({**record_row, "why": "only in one of them"})
            continue
        step_size = steps.get(key[1], 0.0)
        gap = abs(lv[0] - bt[0])
        steps_off = (
            gap / step_size if step_size else (0.0 if gap <= 1e-9 * abs(bt[0]) else math.inf)
        )
        max_steps = max(max_steps, steps_off)
        max_rel = max(max_rel, gap / abs(bt[0]) if bt[0] else 0.0)
        max_price = max(max_price, abs(lv[1] - bt[1]))
        # Live rounds each order down to the exchange's amount step, so its positions and
        # equity drift from the backtest's by the residuals: a fill may differ by a step
        # each way, and by the account's drift (measured: a few 1e-6 of the quantity).
        tolerance = 2.0 * step_size + DRIFT * abs(bt[0])
        if gap > tolerance or lv[1] != bt[1] or (lv[0] > 0) != (bt[0] > 0):
            fill_mismatches.append({**record_row, "why": "side, quantity or price"})
    matched = sum(1 for k in backtest if k in live_net)
    with db.connection() as conn:
        equity = trading.latest_equity(conn, account)
    return PortfolioParity(
        candles=len(decided),
        live_decisions=len(live),
        compared=compared,
        decision_mismatches=mismatches,
        score_max_abs_diff=max(diffs, default=0.0),
        live_fills=len(live_net),
        backtest_fills=len(backtest),
        matched_fills=matched,
        fill_mismatches=fill_mismatches,
        quantity_max_steps=max_steps,
        quantity_max_rel_diff=max_rel,
        price_max_abs_diff=max_price,
        live_equity=equity if equity is not None else math.nan,
        backtest_equity=float(result.equity_values[-1]) * balance,
        fills=records,
    )


@dataclass(frozen=True)
class PortfolioReplayOutcome:
    candles: int
    symbols: list[str]
    model_id: int
    failures: list[str]
    parity: PortfolioParity


def replay_portfolio(
    settings: Settings,
    data_dir: str | Path | None,
    start: str,
    candles: int,
    *,
    model_id: int | None = None,
    fee: float = 0.0005,
    balance: float = 100_000.0,
    log: Callable[[str], None] = lambda message: None,
    progress: Callable[[int], AbstractContextManager[Ticker]] | None = None,
) -> PortfolioReplayOutcome:
    """`signals live --replay` of a portfolio model: `candles` decision candles from `start`
    through the real sensor and the portfolio live job (one run per candle, every market) in a
    fresh `signals_replay` database and one paper account, then the parity with the backtest."""
    data_dir = data_dir or settings.data_dir
    if not data_dir:
        raise ValueError("--data-dir (or SIGNALS_DATA_DIR) is needed: the candles to replay")
    if not PORTFOLIO:
        raise ValueError("a portfolio replay needs SIGNALS_STRATEGY=portfolio")
    timeframe = settings.decision_timeframe
    step = timeframe_ms(timeframe)
    start_ms = parse_date_ms(start) // step * step
    if candles < 2:
        raise ValueError("--candles must be at least 2")
    folder = CandleFolder(data_dir)
    record, why = pick_model(open_database(settings), timeframe, model_id, PORTFOLIO_MODEL)
    if record.config.get("kind") != "portfolio":
        raise ValueError(f"model {record.id} is not a portfolio model")
    log(f"replaying portfolio model {record.id} ({timeframe} decisions), {why}")
    universe = list(record.config["universe"])
    seeded = list(dict.fromkeys([*universe, *factor_basket(record)]))
    missing = [s for s in seeded if s not in folder.symbols()]
    if missing:
        raise ValueError(f"{data_dir} has no candles for {', '.join(missing)}")
    url = fresh_database(resolve_url(settings), "signals_replay")
    db = Database(url)
    timeframes = list(settings.timeframes)
    log(f"seeding candles before {start} into database signals_replay …")
    seed_candles(db, folder, settings.exchange, seeded, timeframes, start_ms)
    install_model(db, record, {"reason": "signals live --replay", "source_model": record.id})
    exchange = ReplayExchange(
        data_dir,
        ReplayClock(start_ms, speed=1.0),
        balance=balance,
        funding_dir=settings.funding_dir,
    )
    closes = [start_ms + (k + 1) * step for k in range(candles)]
    failures = drive_replay(
        settings,
        exchange,
        url,
        closes,
        progress,
        fee=fee,
        balance=balance,
        account_per_market=False,
    )
    steps = {s: float(exchange.market.rules[market_id(s)].step) for s in universe}
    seed_candles(db, folder, settings.exchange, seeded, timeframes, closes[-1] + step)
    decided = [c - step for c in closes]
    parity = portfolio_parity(
        db, settings.exchange, timeframe, timeframes, decided, fee, "paper", balance, steps
    )
    db.close()
    return PortfolioReplayOutcome(len(closes), universe, int(record.id), failures, parity)
