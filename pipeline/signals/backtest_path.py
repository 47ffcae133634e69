"""The backtest's decisions on candles the live job decided: the features frame with labels →
windows → predict, as `validation_backtests` and the walk-forward decide, from the same
stored candles. Parity reports and the gate's shadow requirement compare live with this."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.labels import attach_labels
from pipeline.features.registry import feature_names
from pipeline.model.contract import LoadedModel, load_for_inference, segment_windows
from pipeline.signals.candle import LiveInputs, factor_basket, live_features, load_inputs
from pipeline.store.models import ModelRecord
from pipeline.store.signals import load_signals


@dataclass(frozen=True)
class BacktestPath:
    inputs: LiveInputs  # the stored candles read, up to the candle after the last decided
    loaded: LoadedModel
    decisions: dict[int, tuple[float, int]]  # candle open ms → (probability_up, side)


def backtest_path(
    conn: psycopg.Connection,
    exchange: str,
    symbol: str,
    timeframe: str,
    timeframes: list[str],
    record: ModelRecord,
    first_ms: int,
    last_ms: int,
) -> BacktestPath:
    """The backtest path's decision on every candle of [first_ms, last_ms] it can decide."""
    inputs = load_inputs(
        conn,
        exchange,
        symbol,
        timeframe,
        factor_basket(record),  # the live job's basket: the model's
        timeframes,
        last_ms + timeframe_ms(timeframe),
    )
    loaded = load_for_inference(record, feature_names())
    frame = live_features(inputs, timeframe)
    frame.insert(0, "market", symbol)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    data = attach_labels(frame, {symbol: inputs.base}, timeframe, loaded.label)
    start = pd.Timestamp(first_ms, unit="ms", tz="UTC")
    end = pd.Timestamp(last_ms, unit="ms", tz="UTC")
    windows = segment_windows(data, loaded.features, loaded.window, timeframe, start, end)
    p_up, side = loaded.decide(data, windows)
    decisions = {
        int(t.value // 1_000_000): (float(p), int(s))
        for t, p, s in zip(windows.timestamp, p_up, side, strict=True)
    }
    return BacktestPath(inputs, loaded, decisions)


def shadow_agreement(
    conn: psycopg.Connection,
    exchange: str,
    symbols: list[str],
    timeframe: str,
    timeframes: list[str],
    record: ModelRecord,
) -> tuple[int, int]:
    """(shadow candles the backtest path decided too, how many of those it decided alike:
    the same side and the same probability, bit for bit) over every market in `symbols`."""
    compared = equal = 0
    for symbol in symbols:
        shadow = load_signals(conn, exchange, symbol, timeframe, mode="shadow", model_id=record.id)
        if not shadow:
            continue
        path = backtest_path(
            conn,
            exchange,
            symbol,
            timeframe,
            timeframes,
            record,
            shadow[0]["candle_ms"],
            shadow[-1]["candle_ms"],
        )
        for s in shadow:
            if s["candle_ms"] in path.decisions:
                compared += 1
                p, side = path.decisions[s["candle_ms"]]
                equal += int(p == s["probability_up"] and side == s["side"])
    return compared, equal
