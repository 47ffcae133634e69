"""The one Definitions object of the code location: everything listed explicitly."""

from __future__ import annotations

import os

import dagster as dg

from assets.features import features, market_factor, selected_features
from assets.market_data import ohlcv
from assets.modeling import backtest_report, lstm_model, production_model
from pipeline.execution.risk import RiskConfig
from pipeline.jobs import ohlcv_job, retraining_job
from pipeline.live import live_inference_job
from pipeline.schedules import ohlcv_refresh_schedule, retraining_schedule
from pipeline.sensors import new_candle_sensor
from pipeline.settings import Settings
from resources.broker import BrokerResource
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
        "broker": broker_resource(settings),
    }


def broker_resource(settings: Settings) -> BrokerResource:
    """Paper by default; SIGNALS_BROKER=ccxt trades the exchange account (keys from env)."""
    risk = RiskConfig.from_env(settings.home)
    return BrokerResource(
        kind=os.environ.get("SIGNALS_BROKER", "paper"),
        account=os.environ.get("SIGNALS_ACCOUNT", "paper"),
        exchange=settings.exchange,
        api_url=settings.api_url,
        home=str(settings.home),
        risk_fraction=risk.risk_fraction,
        leverage=risk.leverage,
        margin_mode=risk.margin_mode,
        max_notional=risk.max_notional,
        daily_loss_limit=risk.daily_loss_limit,
        kill_switch=risk.kill_switch,
    )


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
    jobs=[ohlcv_job, retraining_job, live_inference_job],
    schedules=[ohlcv_refresh_schedule, retraining_schedule],
    sensors=[new_candle_sensor],
    resources=build_resources(Settings.from_env()),
)
