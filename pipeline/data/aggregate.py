"""Higher-timeframe candles from 1h ones. A bucket exists only when every one of its hours does."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data.candles import COLUMNS
from pipeline.data.timeframes import timeframe_ms


def aggregate(frame: pd.DataFrame, source_timeframe: str, target_timeframe: str) -> pd.DataFrame:
    """Aggregate ascending, unique candles; incomplete buckets (a gap, an edge) are dropped.

    numpy reductions over bucket boundaries keep the completeness rule explicit, which
    `DataFrame.resample` would hide behind NaN handling.
    """
    step, target = timeframe_ms(source_timeframe), timeframe_ms(target_timeframe)
    if target % step:
        raise ValueError(f"cannot build {target_timeframe} candles from {source_timeframe}")
    per_bucket = target // step
    if per_bucket == 1:
        return frame.reset_index(drop=True)
    if frame.empty:
        return frame.iloc[0:0].reset_index(drop=True)
    ts = frame["timestamp"].to_numpy(dtype="int64")
    bucket = ts - ts % target
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, ts.size])
    ends = starts + counts - 1
    complete = counts == per_bucket
    # reduceat over every bucket start, so each segment is exactly one bucket; then keep complete.
    return pd.DataFrame(
        {
            "timestamp": bucket[starts][complete],
            "open": frame["open"].to_numpy()[starts][complete],
            "high": np.maximum.reduceat(frame["high"].to_numpy(), starts)[complete],
            "low": np.minimum.reduceat(frame["low"].to_numpy(), starts)[complete],
            "close": frame["close"].to_numpy()[ends][complete],
            "volume": np.add.reduceat(frame["volume"].to_numpy(), starts)[complete],
        },
        columns=list(COLUMNS),
    )
