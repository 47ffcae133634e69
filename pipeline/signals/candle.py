"""One live decision: the stored candles up to a closed candle → the 79 features (the
assets' code, over the same full history) → the production model's window → `decide`.

Computing over the full stored history, not a recent tail, is deliberate: recursive
indicators (EMA, Wilder) seeded later differ in the last bits, and the promise is that live
and backtest decide bit for bit alike. It costs tens of milliseconds per candle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.compute import compute_market_features, market_factor_frame
from pipeline.features.labels import LabelRule, market_scale
from pipeline.features.registry import HIGHER_TIMEFRAMES
from pipeline.model.contract import LoadedModel
from pipeline.signals.inference import Decision, decide
from pipeline.store.candles import load_candles
from pipeline.store.models import ModelRecord


class LiveWindowError(ValueError):
    """The deciding window is incomplete: a missing candle or features still warming up."""


@dataclass(frozen=True)
class LiveInputs:
    """What one market's features read: its candles of every timeframe it joins, and the
    base candles of the model's factor basket (for the market factor)."""

    base: pd.DataFrame
    higher: dict[str, pd.DataFrame]
    basket: dict[str, pd.DataFrame]


def factor_basket(record: ModelRecord) -> list[str]:
    """The markets whose factor a model's features were computed against: its recorded
    `factor_basket`, or for records older than that key the markets it was fitted on."""
    basket = record.config.get("factor_basket") or record.data_window.get("markets")
    if not basket:
        raise ValueError(f"model {record.id} records neither a factor basket nor its markets")
    return sorted(basket)


def load_basket(
    conn: psycopg.Connection, exchange: str, timeframe: str, basket: Sequence[str], until_ms: int
) -> dict[str, pd.DataFrame]:
    """The factor basket's stored candles opened at or before `until_ms`: read once per
    decision when many markets are decided together (every market's factor is the same)."""
    return {s: load_candles(conn, exchange, s, timeframe, end_ms=until_ms) for s in basket}


def load_inputs(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    basket: Sequence[str],
    timeframes: list[str],
    until_ms: int,
    basket_candles: dict[str, pd.DataFrame] | None = None,
) -> LiveInputs:
    """Stored candles opened at or before `until_ms` (later ones, if any, are not read).

    `basket` is the model's (`factor_basket`): its markets are read whether or not they
    are among the markets traded here (or taken from `basket_candles`, read by `load_basket`).
    """
    step = timeframe_ms(timeframe)
    candles = (
        basket_candles
        if basket_candles is not None
        else load_basket(conn, exchange, timeframe, basket, until_ms)
    )
    higher = {
        tf: load_candles(conn, exchange, symbol, tf, end_ms=until_ms)
        for tf in HIGHER_TIMEFRAMES
        if tf in timeframes and timeframe_ms(tf) >= step
    }
    base = candles.get(symbol)
    if base is None:
        base = load_candles(conn, exchange, symbol, timeframe, end_ms=until_ms)
    return LiveInputs(base=base, higher=higher, basket=candles)


def live_features(
    inputs: LiveInputs, timeframe: str, factor: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The features asset's computation (factor first, then the market), same inputs;
    `factor`: the basket's market factor when already computed (the same for every market)."""
    if factor is None:
        factor = market_factor_frame(inputs.basket, timeframe)
    return compute_market_features(inputs.base, timeframe, inputs.higher, factor=factor)


def window_at(
    features: pd.DataFrame, names: list[str], window: int, candle_ms: int, step_ms: int
) -> np.ndarray:
    """The model's input ending at `candle_ms`: `window` consecutive candles, as float32
    (the dtype training windows are built in), or a clear refusal."""
    stamps = features["timestamp"].to_numpy(dtype="int64")
    end = int(np.searchsorted(stamps, candle_ms))
    if end >= len(stamps) or stamps[end] != candle_ms:
        raise LiveWindowError(f"candle {pd.Timestamp(candle_ms, unit='ms', tz='UTC')} not stored")
    start = end - window + 1
    expected = candle_ms - np.arange(window - 1, -1, -1, dtype="int64") * step_ms
    if start < 0 or not np.array_equal(stamps[start : end + 1], expected):
        raise LiveWindowError(
            f"the {window} candles up to {pd.Timestamp(candle_ms, unit='ms', tz='UTC')} are not "
            "all stored (a gap): no decision"
        )
    values = features[names].to_numpy(dtype=np.float32)[start : end + 1]
    if not np.isfinite(values).all():
        bad = [n for n, ok in zip(names, np.isfinite(values).all(axis=0), strict=True) if not ok]
        raise LiveWindowError(f"features still warming up or undefined: {', '.join(bad[:5])}")
    return values


def candle_scale(base: pd.DataFrame, candle_ms: int, timeframe: str, rule: LabelRule) -> float:
    """σ × √T at the close of `candle_ms` (NaN while the volatility window warms up)."""
    stamps = base["timestamp"].to_numpy(dtype="int64")
    at = int(np.searchsorted(stamps, candle_ms))
    if at >= len(stamps) or stamps[at] != candle_ms:
        raise LiveWindowError(f"candle {pd.Timestamp(candle_ms, unit='ms', tz='UTC')} not stored")
    return float(market_scale(base.iloc[: at + 1], timeframe, rule)[-1])


def decide_candle(
    loaded: LoadedModel,
    features: pd.DataFrame,
    base: pd.DataFrame,
    market: str,
    candle_ms: int,
    timeframe: str,
) -> Decision:
    """The explained decision at the close of `candle_ms` (the backtest's `decide` path);
    `base` holds the market's candles, for the expected-value filter's scale."""
    window = window_at(features, loaded.features, loaded.window, candle_ms, timeframe_ms(timeframe))
    return decide(
        loaded.network,
        window,
        loaded.scaler.transform,
        loaded.features,
        model_id=loaded.model_id,
        market=market,
        timestamp=pd.Timestamp(candle_ms, unit="ms", tz="UTC"),
        operating=loaded.operating,
        ev_scale=candle_scale(base, candle_ms, timeframe, loaded.label),
    )
