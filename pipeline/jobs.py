"""Jobs: named selections of assets that schedules, sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from pipeline.partitions import ohlcv_partitions

ohlcv_job = dg.define_asset_job(
    "ohlcv_job", selection=dg.AssetSelection.assets("ohlcv"), partitions_def=ohlcv_partitions
)
