"""The public way to compute the 79 candidate features (see `registry.py` for what each is).

No look-ahead: a row's features use only candles closed by that row's close. Base features
are computed per contiguous run of candles (a gap restarts every window and recursion, and
the first `warmup` rows of each run are NaN); higher-timeframe values join on the higher
candle's close time; cross-market values use the other markets' candles at the same open
time and before. `pipeline.features.leakage` checks all of this by prefix invariance.

The market factor's basket is explicit: a model's features must not change with whichever
other markets happen to be loaded beside its own (`basket`: the markets it was fitted on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.base_features import base_features
from pipeline.features.cross_market import (
    CROSS_NAMES,
    MarketFactor,
    cross_features,
    market_factor,
)
from pipeline.features.higher_tf import bucket_closes, htf_values, join_rows
from pipeline.features.registry import (
    HIGHER_TIMEFRAMES,
    HTF_PARTS,
    REGISTRY,
    feature_names,
    warmups,
)
from pipeline.features.segments import run_bounds, usable_rows

__all__ = [
    "basket_frames",
    "compute_features",
    "compute_market_features",
    "feature_names",
    "market_factor_frame",
]

NAMES = feature_names()
_COLUMN = {name: j for j, name in enumerate(NAMES)}
_BASE = [s.name for s in REGISTRY if s.timeframe == "base"]
_CROSS_COLS = [_COLUMN[n] for n in CROSS_NAMES]
_BASE_COLS = [_COLUMN[n] for n in _BASE]


def basket_frames(
    candles: Mapping[str, pd.DataFrame], basket: Sequence[str] | None = None
) -> list[pd.DataFrame]:
    """The base candles the market factor averages: `basket`'s markets (None: every one in
    `candles`), in sorted order so that the factor is the same bit for bit whatever order
    the markets were loaded in. A basket market without candles is an error, not a smaller
    basket."""
    if isinstance(basket, str):
        raise TypeError("basket is a sequence of markets, not one market's name")
    names = sorted(candles) if basket is None else sorted(set(basket))
    if basket is not None and not names:
        raise ValueError("the market factor's basket is empty")
    missing = [m for m in names if m not in candles]
    if missing:
        raise ValueError(
            f"the market factor's basket needs candles of {', '.join(missing)}; "
            f"loaded: {', '.join(sorted(candles)) or 'none'}"
        )
    return [candles[m] for m in names]


def compute_market_features(
    base: pd.DataFrame,
    base_timeframe: str,
    higher: dict[str, pd.DataFrame],
    universe: dict[str, pd.DataFrame] | None = None,
    *,
    factor: pd.DataFrame | None = None,
    basket: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One market's features: a row per row of `base`, `timestamp` (int64 ms) then the 79.

    `higher` holds this market's higher-timeframe candles (a missing one is aggregated from
    `base`). The market factor comes from `universe` (base candles holding every `basket`
    market; basket None: all of them) or, already computed, from `factor`
    (`market_factor_frame`). The market itself need not be in the basket.
    """
    step = timeframe_ms(base_timeframe)
    if factor is not None:
        market = _factor_from_frame(factor, step)
    elif universe is not None:
        market = market_factor(basket_frames(universe, basket), step)
    else:
        raise ValueError("compute_market_features needs the universe's candles or a factor")
    values = np.empty((len(base), len(NAMES)), order="F")
    _fill_market(values, base, base_timeframe, higher, market, market.windows())
    frame = pd.DataFrame(values, columns=NAMES, copy=False)
    frame.insert(0, "timestamp", base["timestamp"].to_numpy(dtype="int64"))
    return frame


def market_factor_frame(
    universe: dict[str, pd.DataFrame],
    base_timeframe: str,
    basket: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The market factor of `basket` (None: every market of `universe`) as a table:
    `timestamp` (int64 ms open time), `factor`, `markets`.

    One row per base candle from the first to the last of any basket market; `markets`
    counts those with a 1-candle return there (the factor is their mean; NaN where none has
    one).
    """
    step = timeframe_ms(base_timeframe)
    market = market_factor(basket_frames(universe, basket), step)
    return pd.DataFrame(
        {
            "timestamp": market.t0 + np.arange(len(market.values), dtype="int64") * step,
            "factor": market.values,
            "markets": market.markets,
        }
    )


def _factor_from_frame(frame: pd.DataFrame, step: int) -> MarketFactor:
    stamps = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(stamps):
        ts = stamps.dt.as_unit("ms").astype("int64").to_numpy()
    else:
        ts = stamps.to_numpy(dtype="int64")
    if len(ts) == 0:
        return MarketFactor(0, step, np.empty(0))
    if ((ts - ts[0]) % step).any() or (np.diff(ts) <= 0).any():
        raise ValueError("market factor rows must be ascending open times on the base grid")
    values = np.full(int(ts[-1] - ts[0]) // step + 1, np.nan)
    values[(ts - ts[0]) // step] = frame["factor"].to_numpy(dtype="float64")
    return MarketFactor(int(ts[0]), step, values)


def compute_features(
    candles: dict[str, pd.DataFrame],
    base_timeframe: str = "1h",
    higher: dict[str, dict[str, pd.DataFrame]] | None = None,
    *,
    basket: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All markets, long: `market`, `timestamp` (UTC open time), then the 79 features.

    Markets keep the order given; rows keep each market's (ascending) order. With `higher`
    None, the 4h and 1d candles are aggregated from the base ones (complete buckets only).
    The market factor averages `basket` (a model's fitted markets; each must be in
    `candles`), or every market given when None; markets outside the basket get features
    against it all the same.
    """
    step = timeframe_ms(base_timeframe)
    factor = market_factor(basket_frames(candles, basket), step)
    windows = factor.windows()
    lengths = [len(frame) for frame in candles.values()]
    values = np.empty((sum(lengths), len(NAMES)), order="F")
    start = 0
    for (symbol, frame), n in zip(candles.items(), lengths, strict=True):
        market_higher = (higher or {}).get(symbol, {})
        rows = values[start : start + n]
        _fill_market(rows, frame, base_timeframe, market_higher, factor, windows)
        start += n
    out = pd.DataFrame(values, columns=NAMES, copy=False)
    ts = np.concatenate(
        [f["timestamp"].to_numpy(dtype="int64") for f in candles.values()] or [np.empty(0, "i8")]
    )
    out.insert(0, "timestamp", pd.to_datetime(ts, unit="ms", utc=True))
    out.insert(0, "market", np.repeat(np.array(list(candles), dtype=object), lengths))
    return out


def _fill_market(
    out: np.ndarray,
    base: pd.DataFrame,
    base_timeframe: str,
    higher: dict[str, pd.DataFrame],
    factor: MarketFactor,
    windows: dict[str, np.ndarray],
) -> None:
    """Write one market's 79 columns into `out` (its rows of the result)."""
    if len(base) == 0:
        return
    step = timeframe_ms(base_timeframe)
    warm = warmups(base_timeframe)
    ts = base["timestamp"].to_numpy(dtype="int64")
    cols = {
        k: np.ascontiguousarray(base[k].to_numpy(dtype="float64"))
        for k in ("open", "high", "low", "close", "volume")
    }
    o, h, lo, c, v = (cols[k] for k in ("open", "high", "low", "close", "volume"))
    runs = run_bounds(ts, step, usable_rows(o, h, lo, c, v))
    if runs != [(0, len(ts))]:  # rows outside every run (gaps' neighbours, bad candles)
        out[:, _BASE_COLS] = np.nan
    for start, stop in runs:
        run = slice(start, stop)
        for name, values in base_features(ts[run], o[run], h[run], lo[run], c[run], v[run], step):
            column = out[run, _COLUMN[name]]
            column[:] = values
            column[: warm[name]] = np.nan
    for tf in HIGHER_TIMEFRAMES:
        htf_ts, htf_close, htf_ms = _higher_source(ts, c, step, higher, tf)
        values = htf_values(htf_ts, htf_close, htf_ms)
        rows = join_rows(htf_ts, htf_ms, ts, step)
        for j, suffix in enumerate(HTF_PARTS):
            np.take(values[:, j], rows, out=out[:, _COLUMN[f"htf_{tf}_{suffix}"]])
    crossed = cross_features(ts, c, factor, windows)
    for j, col in enumerate(_CROSS_COLS):
        out[:, col] = crossed[:, j]


def _higher_source(
    ts: np.ndarray, close: np.ndarray, base_ms: int, higher: dict[str, pd.DataFrame], tf: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Open times and closes of the candles a higher-timeframe feature reads, and their length.

    Given candles win; else complete buckets of base candles (what `aggregate` would build).
    A timeframe not coarser than the base is served by the base candles themselves: the last
    closed candle at least that long.
    """
    htf_ms = timeframe_ms(tf)
    if tf in higher:
        frame = higher[tf]
        return (
            frame["timestamp"].to_numpy(dtype="int64"),
            frame["close"].to_numpy(dtype="float64"),
            htf_ms,
        )
    if htf_ms <= base_ms:
        return ts, close, base_ms
    return (*bucket_closes(ts, close, base_ms, htf_ms), htf_ms)
