"""The backtest's portfolio decisions on candles the live job decided, from the same stored
candles: per market the features frame → windows → predict (the path the backtest of a stored
model runs), the score scale, the volatility, then the portfolio layer's loop from a flat start.
`signals live --replay` compares the live record with this, decision by decision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.features.registry import feature_names
from pipeline.model.contract import segment_windows
from pipeline.model.scorer import load_scorer
from pipeline.portfolio.layer import PortfolioDecisions, decide
from pipeline.portfolio.model import PortfolioSettings
from pipeline.portfolio.scores import score_from_probability
from pipeline.portfolio.volatility import annual_volatility
from pipeline.signals.candle import factor_basket, live_features, load_inputs
from pipeline.store.models import ModelRecord


@dataclass(frozen=True)
class PortfolioPath:
    markets: list[str]
    timestamps: np.ndarray  # the decided candles' open times, one step apart
    p_up: np.ndarray  # [T, M] (NaN: no complete window)
    scores: np.ndarray  # [T, M]
    vol: np.ndarray  # [T, M]
    decisions: PortfolioDecisions
    candles: dict[str, pd.DataFrame]  # each market's stored candles up to the candle after


def portfolio_path(
    conn: psycopg.Connection,
    exchange: str,
    timeframe: str,
    timeframes: list[str],
    record: ModelRecord,
    first_ms: int,
    last_ms: int,
) -> PortfolioPath:
    """The backtest path's portfolio decision at every candle of [first_ms, last_ms]."""
    settings = PortfolioSettings.from_config(record.config, record.id)
    loaded = load_scorer(record, feature_names())
    rule = LabelRule.from_json(record.config["label"])
    step = timeframe_ms(timeframe)
    grid = np.arange(first_ms, last_ms + 1, step, dtype=np.int64)
    markets = settings.universe
    p_up = np.full((len(grid), len(markets)), np.nan)
    vol = np.full((len(grid), len(markets)), np.nan)
    candles: dict[str, pd.DataFrame] = {}
    start = pd.Timestamp(first_ms, unit="ms", tz="UTC")
    end = pd.Timestamp(last_ms, unit="ms", tz="UTC")
    for j, market in enumerate(markets):
        inputs = load_inputs(
            conn, exchange, market, timeframe, factor_basket(record), timeframes, last_ms + step
        )
        candles[market] = inputs.base
        frame = live_features(inputs, timeframe)
        frame.insert(0, "market", market)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        data = attach_labels(frame, {market: inputs.base}, timeframe, rule)
        windows = segment_windows(data, loaded.features, loaded.window, timeframe, start, end)
        at = np.searchsorted(grid, pd.DatetimeIndex(windows.timestamp).as_unit("ms").asi8)
        p_up[at, j] = loaded.predict(windows)
        stamps = inputs.base["timestamp"].to_numpy(dtype=np.int64)
        closes = inputs.base["close"].to_numpy(dtype=np.float64)
        series = annual_volatility(closes, stamps, timeframe, days=settings.vol_days)
        rows = np.searchsorted(stamps, grid)
        known = (rows < len(stamps)) & (stamps[np.minimum(rows, len(stamps) - 1)] == grid)
        vol[known, j] = series[rows[known]]
    scores = settings.scale.apply(score_from_probability(p_up))
    return PortfolioPath(
        markets=list(markets),
        timestamps=grid,
        p_up=p_up,
        scores=scores,
        vol=vol,
        decisions=decide(scores, vol, settings.config),
        candles=candles,
    )
