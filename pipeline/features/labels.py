"""Labels: direction of the forward log return over H candles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms

# Chosen on the training window only (five sample markets, 1h, to 2022-06-30) by
# bench/label_horizon.py: among horizons whose median move clears twice the round-trip cost,
# H = 1 had the best walk-forward log-loss skill (and AUC, 0.543 against 0.520–0.538).
DEFAULT_HORIZON = 1


def forward_log_return(candles: pd.DataFrame, horizon: int, timeframe: str) -> np.ndarray:
    """log(close[t+H] / close[t]) by time; NaN where the candle at t+H is missing (end, gap)."""
    if horizon < 1:
        raise ValueError("the label horizon must be at least one candle")
    ts = candles["timestamp"].to_numpy(dtype="int64")
    close = candles["close"].to_numpy(dtype="float64")
    target = ts + horizon * timeframe_ms(timeframe)
    where = np.minimum(np.searchsorted(ts, target), len(ts) - 1)
    found = ts[where] == target if len(ts) else np.zeros(0, dtype=bool)
    out = np.full(len(close), np.nan)
    out[found] = np.log(close[where[found]] / close[found])
    return out


def direction_labels(
    candles: pd.DataFrame, horizon: int, timeframe: str, dead_zone: float = 0.0
) -> np.ndarray:
    """1.0 up, 0.0 down, NaN when unknown (last H rows, gaps) or inside the dead zone.

    The dead zone (in log-return units) drops moves too small to trade after costs.
    """
    if dead_zone < 0:
        raise ValueError("the dead zone must be non-negative")
    forward = forward_log_return(candles, horizon, timeframe)
    return _direction(forward, dead_zone)


def _direction(forward: np.ndarray, dead_zone: float) -> np.ndarray:
    labels = np.full(len(forward), np.nan)
    labels[forward > dead_zone] = 1.0
    labels[forward < -dead_zone] = 0.0
    return labels


def class_balance(labels: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows, labelled rows and the share of ups per group (e.g. market and split)."""
    grouped = labels.groupby(by, sort=False)["label"]
    table = pd.DataFrame(
        {
            "rows": grouped.size(),
            "labelled": grouped.count(),
            "up_share": grouped.mean(),
        }
    )
    return table.reset_index()


def attach_labels(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    timeframe: str,
    horizon: int = DEFAULT_HORIZON,
    dead_zone: float = 0.0,
) -> pd.DataFrame:
    """The long feature frame (market, timestamp, …) with `forward_return` and `label` added."""
    parts = []
    for symbol, frame in candles.items():
        forward = forward_log_return(frame, horizon, timeframe)
        label = _direction(forward, dead_zone)
        parts.append(
            pd.DataFrame(
                {
                    "market": symbol,
                    "timestamp": pd.to_datetime(frame["timestamp"], unit="ms", utc=True),
                    "forward_return": forward,
                    "label": label,
                }
            )
        )
    labels = pd.concat(parts, ignore_index=True)
    merged = features.merge(labels, on=["market", "timestamp"], how="left", validate="1:1")
    if merged["forward_return"].isna().all() and len(merged):
        raise ValueError("no feature row matched a candle: markets or timestamps disagree")
    return merged
