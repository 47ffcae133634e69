"""Synthetic long feature frames with a known signal, for tests and the training benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms


def synthetic_frame(
    markets: int = 2,
    rows: int = 500,
    features: int = 6,
    *,
    signal: float = 0.0,
    timeframe: str = "1h",
    start: str = "2021-01-01",
    seed: int = 0,
) -> pd.DataFrame:
    """market, timestamp, f0…, forward_return, label: the shape of the labelled feature frame.

    The forward return is `signal · f0 + noise` (signal 0: labels are pure noise); every
    market covers the same contiguous grid of `rows` candles.
    """
    rng = np.random.default_rng(seed)
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    times = pd.Timestamp(start, tz="UTC") + np.arange(rows) * step
    names = [f"f{j}" for j in range(features)]
    parts = []
    for m in range(markets):
        x = rng.standard_normal((rows, features))
        forward = signal * x[:, 0] + rng.standard_normal(rows)
        part = pd.DataFrame(x, columns=names)
        part.insert(0, "timestamp", times)
        part.insert(0, "market", f"M{m}USDT")
        part["forward_return"] = forward
        part["label"] = (forward > 0).astype(np.float64)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("market", "timestamp", "forward_return", "label")]
