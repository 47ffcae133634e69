"""The one Definitions object of the code location: everything listed explicitly."""

from __future__ import annotations

import dagster as dg

from assets.features import features, market_factor, selected_features
from assets.market_data import ohlcv
from assets.modeling import backtest_report, lstm_model, production_model
from pipeline.jobs import ohlcv_job, retraining_job
from pipeline.schedules import ohlcv_refresh_schedule, retraining_schedule
from pipeline.settings import Settings
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.io_managers import ParquetIOManager


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "parquet_io_manager": ParquetIOManager(base_uri=settings.store_uri),
        "database": PostgresResource(url=settings.database_url, home=str(settings.home)),
        "candle_source": CandleSourceResource(
            source=settings.source,
            exchange=settings.exchange,
            api_url=settings.api_url,
            data_dir=str(settings.data_dir) if settings.data_dir else None,
            since=settings.since,
        ),
    }


# In dependency order: the main job materialises them in this order.
ASSETS = [
    ohlcv,
    market_factor,
    features,
    selected_features,
    lstm_model,
    backtest_report,
    production_model,
]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[ohlcv_job, retraining_job],
    schedules=[ohlcv_refresh_schedule, retraining_schedule],
    resources=build_resources(Settings.from_env()),
)
