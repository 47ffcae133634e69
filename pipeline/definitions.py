"""The one Definitions object of the code location: everything listed explicitly.

The settings are resolved once (`pipeline.location.SETTINGS`) and handed to the resources as
their configuration; the exchange keys stay in the environment (`dg.EnvVar`).
"""

from __future__ import annotations

import dagster as dg

from assets import modeling, portfolio
from assets.features import features, market_factor, selected_features
from assets.live import live_signals, live_signals_drift
from assets.market_data import funding_rates, ohlcv
from assets.tuning import hyperparameter_study
from pipeline.inference_job import live_inference_job
from pipeline.jobs import MAIN_JOB_SEQUENCE, live_checks_job, retraining_job
from pipeline.location import SETTINGS
from pipeline.partitions import STRATEGY
from pipeline.portfolio_live import portfolio_live_job
from pipeline.schedules import live_checks_schedule, ohlcv_refresh_schedule, retraining_schedule
from pipeline.sensors import new_candle_sensor
from pipeline.settings import Settings
from resources.broker import broker_resource
from resources.database import PostgresResource
from resources.exchange import CandleSourceResource
from resources.io_managers import JsonIOManager, ParquetIOManager
from resources.project import ProjectResource


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource the assets, jobs and sensor use, configured from `settings`."""
    return {
        "parquet_io_manager": ParquetIOManager(base_uri=settings.store_uri),
        "json_io_manager": JsonIOManager(base_uri=settings.store_uri),
        "project": ProjectResource(
            home=str(settings.home),
            train_end=settings.train_end,
            validation_end=settings.validation_end,
            max_epochs=settings.max_epochs,
        ),
        "database": PostgresResource(url=settings.database_url, home=str(settings.home)),
        "candle_source": CandleSourceResource(
            source=settings.source,
            exchange=settings.exchange,
            api_url=settings.api_url,
            data_dir=str(settings.data_dir) if settings.data_dir else None,
            funding_dir=str(settings.funding_dir) if settings.funding_dir else None,
            since=settings.since,
        ),
        "broker": broker_resource(settings),
    }


# In dependency order: the main job materialises them in this order. The strategy
# (SIGNALS_STRATEGY) decides which model chain the location offers: the portfolio's
# (assets/portfolio.py) or the barrier round trips' (assets/modeling.py, with the study).
PORTFOLIO_ASSETS = [
    ohlcv,
    funding_rates,
    market_factor,
    features,
    portfolio.portfolio_selected_features,
    portfolio.portfolio_lstm_model,
    portfolio.portfolio_backtest_report,
    portfolio.portfolio_production_model,
]
BARRIER_ASSETS = [
    ohlcv,
    market_factor,
    features,
    selected_features,
    hyperparameter_study,
    modeling.lstm_model,
    modeling.backtest_report,
    modeling.production_model,
]
ASSETS = PORTFOLIO_ASSETS if STRATEGY == "portfolio" else BARRIER_ASSETS

defs = dg.Definitions(
    assets=[*ASSETS, live_signals],
    asset_checks=[live_signals_drift],
    jobs=[
        *MAIN_JOB_SEQUENCE,
        retraining_job,
        portfolio_live_job if STRATEGY == "portfolio" else live_inference_job,
        live_checks_job,
    ],
    schedules=[ohlcv_refresh_schedule, retraining_schedule, live_checks_schedule],
    sensors=[new_candle_sensor],
    resources=build_resources(SETTINGS),
)
