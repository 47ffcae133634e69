"""Jobs: named selections of assets that schedules, sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from pipeline.partitions import ohlcv_partitions

ohlcv_job = dg.define_asset_job(
    "ohlcv_job", selection=dg.AssetSelection.assets("ohlcv"), partitions_def=ohlcv_partitions
)

# The weekly retraining: a fresh selection, the study (tuning within its budget), a candidate
# with the study's best parameters, and the gate. Candles and features stay fresh on their
# own (ohlcv_refresh_schedule and the assets' automation conditions).
retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(
        "selected_features", "hyperparameter_study", "lstm_model", "production_model"
    ),
)
