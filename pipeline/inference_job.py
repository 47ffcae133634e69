"""The live inference job: on one closed candle, refresh candles, decide, record, execute.

Launched by `new_candle_sensor` (pipeline/sensors.py) once per market × timeframe × candle.
Two steps in one process (the in-process executor: a run is already a new process, and a
process per step would add seconds to every candle):

- `live_signal`: upsert the newest candles (this market's, every configured market's and
  those of the deciding models' factor baskets), compute the features with the assets'
  code against each model's basket, and decide with `decide` (the backtest's path): the
  production model, and in shadow the newest candidate newer than it that passed its ERROR
  checks (with no production model, that candidate alone, and a WARNING says so). Each
  signal is recorded once per model, market, timeframe and candle, with its mode; earlier
  signals whose exit candle is now stored get their realised return; the `live_signals`
  asset gets a materialisation for the market. No model at all: nothing is recorded, and a
  WARNING says why.
- `execute_signal`: hand the production signal to the position manager (kill switch,
  reconciliation, limits); a shadow signal is never executed.
"""

import time
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import dagster as dg
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.data.ingest import ingest_partition
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.exchange.markets import market_id
from pipeline.execution.barrier_manager import BarrierManager
from pipeline.execution.manager import PositionManager
from pipeline.features.labels import LabelRule
from pipeline.features.registry import feature_names
from pipeline.model.contract import MODEL_NAME, LoadedModel, load_for_inference
from pipeline.partitions import SYMBOLS_BY_MARKET_ID, symbol_for, timeframe_partitions
from pipeline.reporting.text import utc_text
from pipeline.signals.candle import (
    LiveInputs,
    LiveWindowError,
    decide_candle,
    factor_basket,
    live_features,
    load_inputs,
)
from pipeline.signals.live_report import LIVE_SIGNALS_ASSET, TABLE_KEY, live_signal_metadata
from pipeline.store import candles as candle_store
from pipeline.store import models as model_store
from pipeline.store.signals import (
    Mode,
    SignalRow,
    latest_signals,
    mark_reported,
    record_signal,
    reported,
    resolve_signals,
    update_timings,
)
from resources.broker import BrokerResource
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource

LIVE_PAGE_LIMIT = 99


class LiveCandleConfig(dg.Config):
    """The closed candle this run handles (the sensor fills it in)."""

    market: str  # exchange market id, e.g. BTCUSDT
    timeframe: str
    candle_ms: int  # the candle's open time, epoch ms UTC


@dataclass(frozen=True)
class RecordedSignal:
    """What execution acts on: the signal as recorded, its model's label horizon (the risk
    limits hold a position for that many candles) and, for a model that exits at barriers,
    its label rule (the levels its resting exits sit at)."""

    row: SignalRow
    horizon: int
    barrier_rule: LabelRule | None = None


# Identifiers and settings, not measurements: shown as text, so Dagster does not plot them
# across materialisations (and across markets) as if they were a time series.
AS_TEXT = ("model_id", "signal_id", "challenger_model_id", "threshold", "input_hash")


def dagster_metadata(metadata: dict[str, object]) -> dict[str, object]:
    """A live_signals materialisation's metadata for Dagster: the table as markdown, the
    identifiers and the threshold as text; numbers worth a plot stay numbers."""
    out = dict(metadata)
    out[TABLE_KEY] = dg.MetadataValue.md(str(out[TABLE_KEY]))
    for key in AS_TEXT:
        if key in out:
            out[key] = dg.MetadataValue.text(str(out[key]))
    return out


def live_source(candle_source: CandleSourceResource) -> CcxtCandleSource:
    """The exchange a live run refreshes candles from: a few candles per series in small
    pages, and no client-side pacing (a run sends at most two requests per series, far below
    the exchange's limit, and ccxt's limiter would only add a wait before each)."""
    source = candle_source.open()
    if not isinstance(source, CcxtCandleSource):
        raise dg.Failure("live inference needs an exchange source (SIGNALS_SOURCE=ccxt)")
    source.page_limit = LIVE_PAGE_LIMIT
    source.exchange.enableRateLimit = False
    return source


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _refresh(
    db, source: CcxtCandleSource, symbol: str, timeframe: str, close_ms: int, since_ms: int
) -> int:
    """Ingest one series if a candle can have closed since the last stored one; rows added."""
    step = timeframe_ms(timeframe)
    with db.connection() as conn:
        last = candle_store.summary(conn, source.exchange_id, symbol, timeframe).last_ms
    if last is not None and last + 2 * step > close_ms:
        return 0  # the next candle of this series has not closed yet
    return ingest_partition(db, source, symbol, timeframe, since_ms).rows_added


@dg.op
def live_signal(
    context: dg.OpExecutionContext,
    config: LiveCandleConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
) -> RecordedSignal | None:
    """Refresh candles; decide on the closed candle with the production model and, in
    shadow, with the newest candidate that passed its checks; record both; resolve earlier
    signals whose exit candle is now stored; report to the `live_signals` asset."""
    started_wall, started = time.time(), time.perf_counter()
    timings: dict[str, float] = {"step_started_at": started_wall}
    symbol = symbol_for(config.market)
    step = timeframe_ms(config.timeframe)
    close_ms = config.candle_ms + step
    source = live_source(candle_source)
    db = database.database()
    since_ms = parse_date_ms(candle_source.since)
    timeframes = list(timeframe_partitions.get_partition_keys())
    with db.connection() as conn:
        deciders = model_store.deciding_models(conn, MODEL_NAME, config.timeframe)
    # The models' factor baskets may hold markets not traded here: they are kept fresh too.
    baskets = {record.id: factor_basket(record) for record, _ in deciders}
    added = 0
    for other in dict.fromkeys([*SYMBOLS_BY_MARKET_ID.values(), *chain(*baskets.values())]):
        added += _refresh(db, source, other, config.timeframe, close_ms, since_ms)
    for tf in timeframes:
        if timeframe_ms(tf) > step:
            added += _refresh(db, source, symbol, tf, close_ms, since_ms)
    timings["refresh_ms"] = _ms_since(started)
    with db.connection() as conn:
        resolved = resolve_signals(
            conn,
            source.exchange_id,
            symbol,
            config.timeframe,
            step,
            BacktestConfig().round_trip,
            source.now_ms(),  # outcomes only from candles the exchange has closed
        )

    if not deciders:
        context.log.warning(  # a green run that records nothing must say so loudly
            f"no production {MODEL_NAME} model for {config.timeframe} and no candidate that "
            f"passed its checks: nothing recorded for {config.market} at the candle of "
            f"{utc_text(config.candle_ms)} (train one with training_job; promote it through "
            "production_model, whose refusals are the check production_model_gate_passed)"
        )
        context.add_output_metadata({"signal": "none", "reason": "no model to decide with"})
        return None
    if deciders[0][1] == "shadow":
        context.log.warning(
            f"no production {MODEL_NAME} model for {config.timeframe}: candidate "
            f"{deciders[0][0].id} decides {config.market} at {utc_text(config.candle_ms)} in "
            "shadow (recorded, never executed)"
        )

    recorded: list[tuple[SignalRow, LoadedModel, dict[str, Any]]] = []
    features_by_basket: dict[tuple[str, ...], tuple[LiveInputs, pd.DataFrame]] = {}
    for record, mode in deciders:
        mark = time.perf_counter()
        loaded = load_for_inference(record, feature_names())
        model_timings = {**timings, "model_ms": _ms_since(mark)}
        basket = tuple(baskets[record.id])
        if basket not in features_by_basket:
            mark = time.perf_counter()
            with db.connection() as conn:
                inputs = load_inputs(
                    conn,
                    source.exchange_id,
                    symbol,
                    config.timeframe,
                    basket,
                    timeframes,
                    config.candle_ms,
                )
            model_timings["load_ms"] = _ms_since(mark)
            mark = time.perf_counter()
            features_by_basket[basket] = (inputs, live_features(inputs, config.timeframe))
            model_timings["features_ms"] = _ms_since(mark)
        inputs, features = features_by_basket[basket]
        mark = time.perf_counter()
        try:
            decision = decide_candle(
                loaded, features, inputs.base, symbol, config.candle_ms, config.timeframe
            )
        except LiveWindowError as err:
            context.log.warning(
                f"{config.market} {utc_text(config.candle_ms)}: no {mode} decision by model "
                f"{record.id}: {err}"
            )
            continue
        model_timings["decide_ms"] = _ms_since(mark)
        model_timings["signal_ms"] = _ms_since(started)
        with db.connection() as conn:
            row = record_signal(
                conn,
                exchange=source.exchange_id,
                symbol=symbol,
                timeframe=config.timeframe,
                candle_ms=config.candle_ms,
                decision=decision,
                run_id=context.run_id,
                timings=model_timings,
                mode=cast(Mode, mode),
                horizon=loaded.horizon,
            )
            update_timings(conn, row.id, {"signal_recorded_at": time.time()})
        recorded.append((row, loaded, decision.to_json()))

    if not recorded:
        context.add_output_metadata({"signal": "none", "reason": "no complete window"})
        return None
    with db.connection() as conn:
        latest = latest_signals(conn, source.exchange_id, symbol, config.timeframe)
    metadata = dagster_metadata(
        live_signal_metadata(
            [(row, decision) for row, _, decision in recorded], latest, config.candle_ms, resolved
        )
    )
    # One materialisation per candle and market: a retried run finds its candle reported
    # (unless its first run stopped between the event and the mark: then it is reported twice
    # rather than never).
    with db.connection() as conn:
        already = reported(conn, recorded[0][0].id)
    if not already:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=LIVE_SIGNALS_ASSET,
                partition=config.market,
                description=f"{config.market} {utc_text(config.candle_ms)}",
                metadata=metadata,
            )
        )
        with db.connection() as conn:
            mark_reported(conn, [row.id for row, _, _ in recorded])
    context.add_output_metadata({**metadata, "candles_added": added})
    production = [(row, loaded) for row, loaded, _ in recorded if row.mode == "production"]
    if not production:
        return None  # shadow only: nothing to execute
    row, loaded = production[0]
    barriers = loaded.label if loaded.label.barrier_k is not None else None
    return RecordedSignal(row, loaded.horizon, barriers)


@dg.op
def execute_signal(
    context: dg.OpExecutionContext,
    signal: RecordedSignal | None,
    database: PostgresResource,
    broker: BrokerResource,
    candle_source: CandleSourceResource,
) -> None:
    """Turn the signal into the position it asks for, within the risk limits."""
    if signal is None:
        context.log.warning(
            "nothing to execute: no production signal for this candle (see the signal "
            "step's log; a shadow signal is never executed)"
        )
        return
    started = time.perf_counter()
    row = signal.row
    db = database.database()
    desk = (
        db,
        broker.open(db, market_id(row.symbol)),
        broker.risk(signal.horizon),
        row.exchange,
        row.timeframe,
        timeframe_ms(row.timeframe),
    )
    # A barrier model's exits rest at the exchange (stop and take-profit at its levels).
    manager = (
        BarrierManager(*desk, rule=signal.barrier_rule)
        if signal.barrier_rule is not None
        else PositionManager(*desk)
    )
    source = candle_source.open()
    now_ms = source.now_ms() if isinstance(source, CcxtCandleSource) else None
    done = manager.execute(row, now_ms=now_ms)
    timings = {"execute_ms": _ms_since(started), "executed_at": time.time()}
    with db.connection() as conn:
        update_timings(conn, row.id, timings)
    context.log.info(f"{row.symbol} {utc_text(row.candle_ms)}: {done.action} {done.note}".strip())
    context.add_output_metadata(
        {"action": done.action, "execution": dg.MetadataValue.json(done.to_json()), **timings}
    )


@dg.job(executor_def=dg.in_process_executor, tags={"signals/kind": "live"})
def live_inference_job() -> None:
    """One closed candle of one market: decide, record, execute (launched by the sensor)."""
    execute_signal(live_signal())
