"""The candle frame every source produces: one row per candle, open time in epoch ms."""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def candle_frame(rows: list[list[float]] | np.ndarray | None = None) -> pd.DataFrame:
    """Candles from ccxt-style rows `[timestamp, open, high, low, close, volume]`."""
    array = np.asarray(rows if rows is not None else [], dtype="float64").reshape(-1, 6)
    frame = pd.DataFrame(array[:, 1:], columns=list(COLUMNS[1:]))
    # Timestamps go through float64 here; epoch ms < 2**53 are exact.
    frame.insert(0, "timestamp", array[:, 0].astype("int64"))
    return frame
