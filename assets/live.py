"""`live_signals`: what the live job decided, per market, and the drift watch over it.

The asset is materialised by `live_inference_job` (one materialisation per market and
candle, reported by the job: it is not computed here), so its page shows each candle's
side, probability, confidence, top features, model and mode (production or shadow), and
the realised net return as signals resolve. Its check asks whether the model's inputs and
calibration have moved since training, so that drift is visible before its money is.
"""

import dagster as dg
import numpy as np
import pandas as pd

from pipeline.model.contract import MODEL_NAME
from pipeline.partitions import (
    BASE_TIMEFRAME,
    SYMBOLS_BY_MARKET_ID,
    market_partitions,
    timeframe_partitions,
)
from pipeline.signals.candle import factor_basket, live_features, load_inputs
from pipeline.signals.drift import (
    CALIBRATION_BOUND,
    MAX_DRIFTED_SHARE,
    MIN_RESOLVED,
    PSI_FLOOR,
    RECENT_CANDLES,
    calibration_drift,
    market_drift,
)
from pipeline.signals.live_report import LIVE_SIGNALS_ASSET
from pipeline.store import candles as candle_store
from pipeline.store import models as model_store
from pipeline.store.signals import resolved_outcomes
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource

DRIFT_CHECK = "live_signals_inputs_and_calibration_hold"

live_signals = dg.AssetSpec(
    LIVE_SIGNALS_ASSET,
    group_name="live",
    partitions_def=market_partitions,
    kinds={"postgres"},
    description="Each closed candle's live decision for a market, reported by "
    "live_inference_job (launched by new_candle_sensor): side, probability, confidence, top "
    "features, model and mode (production, executed; shadow, recorded only), the realised "
    "net return once the signal's exit candle closed, and a table of the last signals.",
    deps=["production_model", "lstm_model"],
)


class DriftCheckConfig(dg.Config):
    """The drift watch's bounds (defaults: pipeline.signals.drift)."""

    recent_candles: int = RECENT_CANDLES
    psi_floor: float = PSI_FLOOR
    max_drifted_share: float = MAX_DRIFTED_SHARE
    calibration_bound: float = CALIBRATION_BOUND
    min_resolved: int = MIN_RESOLVED


@dg.asset_check(
    asset=LIVE_SIGNALS_ASSET,
    name=DRIFT_CHECK,
    description="For the model deciding live (production, else the shadow candidate), per "
    "market: the newest week of each selected feature against the model's training window "
    "(PSI; a feature drifted when it is further off than any week of the training window "
    "was), and the calibration of its resolved signals against validation's. WARN, naming "
    "the worst features, when too many features drifted or calibration slipped.",
    blocking=False,
)
def live_signals_drift(
    context: dg.AssetCheckExecutionContext,
    config: DriftCheckConfig,
    database: PostgresResource,
    candle_source: CandleSourceResource,
) -> dg.AssetCheckResult:
    exchange = candle_source.exchange
    db = database.database()
    with db.connection() as conn:
        deciders = model_store.deciding_models(conn, MODEL_NAME, BASE_TIMEFRAME)
    if not deciders:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no model decides live (no production model, no candidate that "
            "passed its checks): nothing to watch",
        )
    record, mode = deciders[0]
    train = record.data_window["train"]
    first, last = pd.Timestamp(train["first_decision"]), pd.Timestamp(train["last_decision"])
    timeframes = list(timeframe_partitions.get_partition_keys())
    rows, problems = [], []
    for market, symbol in SYMBOLS_BY_MARKET_ID.items():
        with db.connection() as conn:
            newest = candle_store.summary(conn, exchange, symbol, BASE_TIMEFRAME).last_ms
            if newest is None:
                problems.append(f"{market}: no candles stored")
                continue
            inputs = load_inputs(
                conn, exchange, symbol, BASE_TIMEFRAME, factor_basket(record), timeframes, newest
            )
            probabilities, went_up = resolved_outcomes(
                conn, record.id, exchange, symbol, BASE_TIMEFRAME
            )
        try:
            drift = market_drift(
                live_features(inputs, BASE_TIMEFRAME),
                record.features,
                first,
                last,
                config.recent_candles,
                config.psi_floor,
                config.max_drifted_share,
            )
        except ValueError as err:
            problems.append(f"{market}: {err}")
            continue
        calibration = calibration_drift(
            np.asarray(probabilities),
            np.asarray(went_up, dtype=float),
            float(record.metrics.get("val_ece", float("nan"))),
            config.calibration_bound,
            config.min_resolved,
        )
        rows.append((market, drift, calibration))
    failing = [m for m, d, c in rows if not (d.passed and c.passed)]
    table = [
        "| market | drifted features | worst (PSI / bound) | calibration |",
        "|---|---|---|---|",
        *(
            f"| {m} | {len(d.drifted)}/{len(d.psi)} ({d.share:.0%}) | {d.worst(3)} | {c.text()} |"
            for m, d, c in rows
        ),
    ]
    summary = (
        f"model {record.id} ({mode}): "
        + (
            "; ".join(f"{m} drifted: {d.worst(3)}" for m, d, _ in rows if m in failing)
            if failing
            else "every market within bounds"
        )
        + (f"; not judged: {'; '.join(problems)}" if problems else "")
    )
    context.log.info(summary)
    return dg.AssetCheckResult(
        passed=not failing and not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=summary,
        metadata={
            "model_id": record.id,
            "mode": mode,
            "markets_drifted": len(failing),
            "worst_drifted_share": round(max((d.share for _, d, _ in rows), default=0.0), 4),
            "recent_candles": config.recent_candles,
            "by_market": dg.MetadataValue.md("\n".join(table)),
        },
    )
