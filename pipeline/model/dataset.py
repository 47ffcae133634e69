"""Windows of consecutive candles for the LSTM, kept lazy so memory stays at one 2D array.

A window is the L candles ending at its decision time (the last candle's open time). Windows
are indexed by the row of their last candle in one float32 [rows, F] array holding every
market's rows; a batch is gathered on demand. At 5 markets × 28k candles × 50 features that
array is 28 MB, where materialised windows at L = 32 would take about 900 MB.

The rest of the dataset stage lives beside this module and builds on it, never the other way:
`Scaler` (scaler.py), `SplitConfig` / `chronological_split` (splits.py) and class balancing
(sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms


@dataclass(frozen=True, eq=False)
class WindowArray:
    """`X` of a window set: behaves like a float32 [n, L, F] array, stores [rows, F] + ends."""

    values: np.ndarray  # float32 [rows, F]: every market's rows, each market contiguous
    ends: np.ndarray  # int64 [n]: row of each window's last candle
    length: int  # L

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ends), self.length, self.values.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def nbytes_materialised(self) -> int:
        """What `np.asarray(X)` would allocate (the memory this class avoids)."""
        n, length, width = self.shape
        return n * length * width * self.values.itemsize

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, key) -> np.ndarray:
        ends = self.ends[key]
        offsets = np.arange(1 - self.length, 1)
        if np.ndim(ends) == 0:
            return self.values[int(ends) + offsets]
        return self.values[np.asarray(ends)[:, None] + offsets]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take(self, index: np.ndarray) -> WindowArray:
        return WindowArray(self.values, self.ends[index], self.length)

    def with_values(self, values: np.ndarray) -> WindowArray:
        if values.shape != self.values.shape:
            raise ValueError("replacement values must keep the row layout")
        return WindowArray(values, self.ends, self.length)

    def row_mask(self) -> np.ndarray:
        """Rows covered by at least one window: the rows a scaler may be fitted on."""
        marks = np.zeros(len(self.values) + 1, dtype=np.int64)
        np.add.at(marks, self.ends - self.length + 1, 1)
        np.add.at(marks, self.ends + 1, -1)
        return np.cumsum(marks[:-1]) > 0


@dataclass(frozen=True, eq=False)
class WindowSet:
    """Windows pooled over markets, ordered by (timestamp, market)."""

    X: WindowArray  # float32 [n, L, F] (lazy)
    y: np.ndarray  # float32 [n]: 1.0 up, 0.0 down
    market: np.ndarray  # str [n]
    timestamp: pd.DatetimeIndex  # [n] decision time (last candle's open), UTC
    forward_return: np.ndarray  # float64 [n]
    features: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.y)

    @property
    def window(self) -> int:
        return self.X.length

    def take(self, index: np.ndarray) -> WindowSet:
        """A subset (boolean mask or positions) sharing the same row array."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return WindowSet(
            X=self.X.take(index),
            y=self.y[index],
            market=self.market[index],
            timestamp=self.timestamp[index],
            forward_return=self.forward_return[index],
            features=self.features,
        )

    def with_values(self, values: np.ndarray) -> WindowSet:
        """The same windows over transformed rows (e.g. scaled): no window is copied."""
        return WindowSet(
            self.X.with_values(values),
            self.y,
            self.market,
            self.timestamp,
            self.forward_return,
            self.features,
        )


def make_windows(
    data: pd.DataFrame,
    features: list[str],
    window: int,
    timeframe: str,
    labelled: bool = True,
) -> WindowSet:
    """Every window of `window` contiguous candles with finite features and a known label.

    `data` is the long frame (market, timestamp, features…, label, forward_return). A window
    never spans two markets, a missing candle, or a row with a non-finite feature. With
    `labelled=False` the label may be unknown (y is then NaN): the windows a decision is made
    on, which must not depend on the future (a flat next candle has no label).
    """
    if window < 1:
        raise ValueError("the window must be at least one candle")
    missing = [
        c for c in ("market", "timestamp", "label", "forward_return", *features) if c not in data
    ]
    if missing:
        raise ValueError(f"columns missing from the feature frame: {missing}")
    # Sort positions, not the frame: only the 50 feature columns are ever copied (as float32).
    unsorted = pd.DatetimeIndex(pd.to_datetime(data["timestamp"], utc=True)).as_unit("ns")
    market_codes, names = pd.factorize(data["market"], sort=True)
    order = np.lexsort((unsorted.asi8, market_codes))
    times, codes = unsorted[order], market_codes[order]
    ns = times.asi8
    same_market = codes[1:] == codes[:-1]
    steps = np.diff(ns)
    if (same_market & (steps == 0)).any():
        raise ValueError("duplicate (market, timestamp) rows in the feature frame")
    values = data[features].to_numpy(dtype=np.float32)[order]
    label = data["label"].to_numpy(dtype=np.float64)[order]

    step_ns = timeframe_ms(timeframe) * 1_000_000
    starts_run = np.r_[True, ~(same_market & (steps == step_ns))]
    bad = ~np.isfinite(values).all(axis=1)
    bad_before = np.r_[0, np.cumsum(bad)]
    runs_before = np.r_[0, np.cumsum(starts_run)]
    ends = np.arange(window - 1, len(data))
    ok = (
        (bad_before[ends + 1] - bad_before[ends + 1 - window] == 0)
        # no row after the window's first starts a new run
        & (runs_before[ends + 1] - runs_before[ends + 2 - window] == 0)
        & (np.isfinite(label[ends]) | (not labelled))
    )
    ends = ends[ok]
    ends = ends[np.lexsort((codes[ends], ns[ends]))]
    return WindowSet(
        X=WindowArray(values, ends.astype(np.int64), window),
        y=label[ends].astype(np.float32),
        market=np.asarray(names, dtype=object)[codes[ends]],
        timestamp=times[ends],
        forward_return=data["forward_return"].to_numpy(dtype=np.float64)[order[ends]],
        features=tuple(features),
    )
