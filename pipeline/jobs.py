"""Jobs: named selections of assets that schedules, sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from pipeline.partitions import ohlcv_partitions

ohlcv_job = dg.define_asset_job(
    "ohlcv_job",
    selection=dg.AssetSelection.assets("ohlcv"),
    partitions_def=ohlcv_partitions,
    description="Ingest one market × timeframe partition's new closed candles (incremental, "
    "validated, idempotent). Launched hourly by ohlcv_refresh_schedule, or as a backfill.",
)

# The weekly retraining: a fresh selection, the study (tuning within its budget), a candidate
# with the study's best parameters, and the gate. Candles and features stay fresh on their
# own (ohlcv_refresh_schedule and the assets' automation conditions).
retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(
        "selected_features", "hyperparameter_study", "lstm_model", "production_model"
    ),
    description="Reselect the features, tune within the study's budget, train a candidate "
    "with the best trial, and let the gate decide (a refusal is the WARN check "
    "production_model_gate_passed). Launched weekly by retraining_schedule.",
)
