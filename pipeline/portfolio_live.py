"""The live portfolio job: on one closed decision candle, every market decided together.

Launched by `new_candle_sensor` under the portfolio strategy once per decision candle (run key
`live:portfolio:TIMEFRAME:CANDLE_MS`: Dagster never launches it twice). Two steps in one
process:

- `portfolio_signals`: refresh every market's candles (the decision timeframe, and the base
  timeframe the market factor and the higher-timeframe features read), compute the features
  with the assets' code, and let each deciding model (production, and in shadow the newest
  candidate that passed its ERROR checks) decide every market through the one inference path;
  its scores become target weights through the portfolio layer's step from the model's last
  stored state. The decision (scores, volatilities, weights, orders, the layer's state) is
  recorded once; each market's signal is recorded with its place in the portfolio (score,
  target weight, ordered or not, exposure) and reported to its `live_signals` partition.
- `rebalance_portfolio`: hand production's targets to the portfolio manager, which rebalances
  the account to them with ordinary market orders (reduce-only when reducing, the exchange's
  precision and minimum notional respected), within the risk limits. Shadow is never traded.
"""

import resource
import time
from dataclasses import dataclass, replace
from typing import Any, cast

import dagster as dg
import numpy as np

from pipeline.backtest.config import BacktestConfig
from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.data.timeframes import parse_date_ms, timeframe_ms
from pipeline.exchange.markets import market_id
from pipeline.execution.portfolio_manager import MarketTarget, PortfolioManager
from pipeline.features.compute import market_factor_frame
from pipeline.features.registry import feature_names
from pipeline.inference_job import _ms_since, _refresh, dagster_metadata, live_source
from pipeline.location import SETTINGS
from pipeline.model.scorer import load_scorer
from pipeline.partitions import SYMBOLS_BY_MARKET_ID, timeframe_partitions
from pipeline.portfolio.model import MODEL_NAME, PortfolioSettings, is_portfolio
from pipeline.portfolio.rebalance import LayerState
from pipeline.prelaunch import wait_for_close
from pipeline.reporting.text import utc_text
from pipeline.signals.candle import factor_basket, live_features, load_basket, load_inputs
from pipeline.signals.live_report import LIVE_SIGNALS_ASSET, live_signal_metadata
from pipeline.signals.portfolio import PortfolioDecision, decide_portfolio
from pipeline.store import models as model_store
from pipeline.store import portfolio as portfolio_store
from pipeline.store.signals import (
    Mode,
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

CLOSE_GRACE_MS = 1_000


class PortfolioCandleConfig(dg.Config):
    """The closed decision candle this run handles (the sensor fills it in)."""

    timeframe: str
    candle_ms: int  # the candle's open time, epoch ms UTC


@dataclass(frozen=True)
class ProductionTargets:
    """What execution acts on: production's decision at one candle."""

    decision_id: int
    candle_ms: int
    timeframe: str
    exchange: str
    targets: list[MarketTarget]


def _deciders(conn, timeframe: str) -> list[tuple[model_store.ModelRecord, str]]:
    return [
        (record, mode)
        for record, mode in model_store.deciding_models(conn, MODEL_NAME, timeframe)
        if is_portfolio(record.config)
    ]


@dg.op
def portfolio_signals(
    context: dg.OpExecutionContext,
    config: PortfolioCandleConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
) -> ProductionTargets | None:
    """Refresh candles; decide every market with production (and in shadow the newest
    candidate); step the layer; record the decision and each market's signal."""
    started = time.perf_counter()
    timings: dict[str, float] = {"step_started_at": time.time()}
    tf, candle_ms = config.timeframe, config.candle_ms
    close_ms = candle_ms + timeframe_ms(tf)
    source = live_source(candle_source)
    # A run the sensor launched ahead of the close waits for it on the exchange's clock.
    # (a second after it: the exchange's last trades of the candle are in its kline by then)
    waited = wait_for_close(
        source.now_ms, close_ms + CLOSE_GRACE_MS, SETTINGS.prelaunch_lead_s + 120
    )
    timings["waited_for_close_s"] = round(waited, 3)
    db = database.database()
    since_ms = parse_date_ms(candle_source.since)
    timeframes = list(timeframe_partitions.get_partition_keys())
    with db.connection() as conn:
        deciders = _deciders(conn, tf)
    symbols = list(SYMBOLS_BY_MARKET_ID.values())
    for record, _ in deciders:
        symbols += [s for s in factor_basket(record) if s not in symbols]
    added = 0
    # The decision candles and the higher timeframes its features join (`load_inputs`).
    frames = [f for f in timeframes if timeframe_ms(f) >= timeframe_ms(tf)]
    for symbol in symbols:
        for frame in frames:
            added += _refresh(db, source, symbol, frame, close_ms, since_ms)
    timings["refresh_ms"] = _ms_since(started)
    resolved = _resolve(db, source, tf)
    if not deciders:
        context.log.warning(
            f"no portfolio model for {tf} (production, or a candidate that passed its checks): "
            f"nothing decided at the candle of {utc_text(candle_ms)} (train one with "
            "training_job; production_model's gate promotes it)"
        )
        context.add_output_metadata({"decision": "none", "reason": "no model to decide with"})
        return None
    if deciders[0][1] == "shadow":
        context.log.warning(
            f"no production portfolio model for {tf}: candidate {deciders[0][0].id} decides in "
            "shadow (recorded, never executed)"
        )
    production: ProductionTargets | None = None
    for record, mode in deciders:
        begun = time.perf_counter()
        decision = _decide(db, source.exchange_id, record, mode, tf, timeframes, candle_ms)
        # candles read, features computed and every market scored, by this model
        timings[f"{mode}_decide_ms"] = _ms_since(begun)
        with db.connection() as conn:
            stored = portfolio_store.record_decision(
                conn,
                model_id=int(record.id),
                exchange=source.exchange_id,
                timeframe=tf,
                candle_ms=candle_ms,
                mode=mode,
                markets=decision.markets,
                scores=[_plain(x) for x in decision.scores],
                vol=[_plain(x) for x in decision.vol],
                raw=decision.raw.tolist(),
                targets=decision.targets.tolist(),
                orders=decision.orders.tolist(),
                state=decision.state.to_json(),
                run_id=context.run_id,
            )
        if not stored.created:  # a retried run: the first run's decision stands
            decision = _as_recorded(decision, stored)
        timings["process_cpu_s"] = process_cpu_s()
        _record_signals(context, db, source.exchange_id, decision, record, mode, tf, timings)
        context.log.info(
            f"model {record.id} ({mode}) at {utc_text(candle_ms)}: targets "
            + ", ".join(
                f"{m} {w:+.3f}{'*' if o else ''}"
                for m, w, o in zip(decision.markets, decision.targets, decision.orders, strict=True)
            )
            + " (* ordered)"
        )
        if mode == "production":
            production = ProductionTargets(
                decision_id=stored.id,
                candle_ms=candle_ms,
                timeframe=tf,
                exchange=source.exchange_id,
                targets=[
                    MarketTarget(m, float(w), bool(o))
                    for m, w, o in zip(
                        decision.markets, decision.targets, decision.orders, strict=True
                    )
                ],
            )
    context.add_output_metadata({"candles_added": added, "signals_resolved": resolved, **timings})
    return production


def _resolve(db, source: CcxtCandleSource, tf: str) -> int:
    """Earlier signals' outcomes over their horizon, for each market whose exit candle has
    closed on the exchange's clock (never from a candle it has not closed)."""
    now_ms, step, cost, resolved = source.now_ms(), timeframe_ms(tf), BacktestConfig().round_trip, 0
    with db.connection() as conn:
        for symbol in SYMBOLS_BY_MARKET_ID.values():
            resolved += resolve_signals(conn, source.exchange_id, symbol, tf, step, cost, now_ms)
    return resolved


def process_cpu_s() -> float:
    """CPU this run's process has used so far, imports included (what a candle costs it)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _plain(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _decide(
    db, exchange: str, record, mode: str, tf: str, timeframes: list[str], candle_ms: int
) -> PortfolioDecision:
    """Every market of the model's universe decided at `candle_ms` from its last state."""
    settings = PortfolioSettings.from_config(record.config, record.id)
    loaded = load_scorer(record, feature_names())
    basket = tuple(factor_basket(record))
    features, candles = {}, {}
    with db.connection() as conn:
        # The basket and its factor once: every market's features join the same factor.
        basket_candles = load_basket(conn, exchange, tf, basket, candle_ms)
        factor = market_factor_frame(basket_candles, tf)
        for symbol in settings.universe:
            inputs = load_inputs(
                conn, exchange, symbol, tf, basket, timeframes, candle_ms, basket_candles
            )
            features[symbol] = live_features(inputs, tf, factor)
            candles[symbol] = inputs.base
        before = portfolio_store.previous_decision(conn, int(record.id), exchange, tf, candle_ms)
        if before is None and mode == "production":
            # A newly promoted model takes over what the account was ordered to hold (its
            # standing targets), not a flat book, when the same markets are traded.
            handed = portfolio_store.previous_production_decision(conn, exchange, tf, candle_ms)
            if handed is not None and handed.markets == settings.universe:
                before = handed
    state = LayerState.from_json(before.state) if before is not None else None
    return decide_portfolio(loaded, settings, features, candles, candle_ms, tf, state)


def _as_recorded(decision: PortfolioDecision, stored) -> PortfolioDecision:
    """The decision as the first run recorded it (a retried run must act on that one)."""
    return replace(
        decision,
        targets=np.array(stored.targets, dtype=np.float64),
        orders=np.array(stored.orders, dtype=bool),
        raw=np.array(stored.raw, dtype=np.float64),
        state=LayerState.from_json(stored.state),
    )


def _record_signals(
    context: dg.OpExecutionContext,
    db,
    exchange: str,
    decision: PortfolioDecision,
    record,
    mode: str,
    tf: str,
    timings: dict[str, Any],
) -> None:
    """Each market's signal with its place in the portfolio, reported to `live_signals`."""
    for market in decision.markets:
        explained = decision.decisions.get(market)
        if explained is None:
            context.log.warning(
                f"{market} {utc_text(decision.candle_ms)}: no decision by model {record.id}: "
                f"{decision.skipped.get(market, 'no window')}"
            )
            continue
        held = replace(explained, side=decision.side(market))
        with db.connection() as conn:
            row = record_signal(
                conn,
                exchange=exchange,
                symbol=market,
                timeframe=tf,
                candle_ms=decision.candle_ms,
                decision=held,
                run_id=context.run_id,
                timings=timings,
                mode=cast(Mode, mode),
                horizon=int(record.config["horizon"]),
                context=decision.context(market),
            )
            latest = latest_signals(conn, exchange, market, tf)
            already = reported(conn, row.id)
        if already:
            continue
        metadata = dagster_metadata(
            live_signal_metadata([(row, held.to_json())], latest, decision.candle_ms, 0)
        )
        metadata |= {  # four decimals: a weight or a volatility, not 16 digits of noise
            f"portfolio_{k}": round(v, 4) if isinstance(v, float) else v
            for k, v in decision.context(market).items()
            if v is not None
        }
        context.log_event(
            dg.AssetMaterialization(
                asset_key=LIVE_SIGNALS_ASSET,
                partition=market_id(market),
                description=f"{market} {utc_text(decision.candle_ms)} ({mode} portfolio)",
                metadata=metadata,
            )
        )
        with db.connection() as conn:
            mark_reported(conn, [row.id])
            update_timings(conn, row.id, {"signal_recorded_at": time.time()})


@dg.op
def rebalance_portfolio(
    context: dg.OpExecutionContext,
    targets: ProductionTargets | None,
    database: PostgresResource,
    broker: BrokerResource,
    candle_source: CandleSourceResource,
) -> None:
    """Rebalance the account to production's targets, within the risk limits."""
    if targets is None:
        context.log.warning(
            "nothing to execute: no production portfolio decision for this candle (a shadow "
            "decision is never executed)"
        )
        return
    started = time.perf_counter()
    db = database.database()
    manager = PortfolioManager(
        db,
        broker.open(db),
        broker.risk(1),
        targets.exchange,
        targets.timeframe,
        timeframe_ms(targets.timeframe),
    )
    source = candle_source.open()
    now_ms = source.now_ms() if isinstance(source, CcxtCandleSource) else None
    done = manager.execute(targets.candle_ms, targets.targets, now_ms=now_ms)
    context.log.info(f"portfolio {utc_text(targets.candle_ms)}: {done.action} {done.note}".strip())
    context.add_output_metadata(
        {
            "action": done.action,
            "execution": dg.MetadataValue.json(done.to_json()),
            "execute_ms": _ms_since(started),
        }
    )


@dg.job(executor_def=dg.in_process_executor, tags={"signals/kind": "live"})
def portfolio_live_job() -> None:
    """One closed decision candle: every market decided together, recorded, rebalanced."""
    rebalance_portfolio(portfolio_signals())
