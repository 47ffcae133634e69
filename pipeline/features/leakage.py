"""Prefix invariance: the executable form of "no look-ahead".

If a feature at candle t uses only candles closed by t's close, then computing it from the
candles up to t must give, row for row, what the whole history gives. Any feature that peeks
ahead (a shifted series, a higher candle joined on its open time, a statistic fitted on the
whole series) changes some earlier row when the later candles are cut away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms

Candles = dict[str, pd.DataFrame]
Higher = dict[str, dict[str, pd.DataFrame]] | None
FeaturesFn = Callable[[Candles, Higher], pd.DataFrame]  # long frame: market, timestamp, ...


def known_at(
    candles: Candles, higher: Higher, cut_ms: int, base_timeframe: str
) -> tuple[Candles, Higher]:
    """The candles closed by the close of the base candle opened at `cut_ms`, all markets."""
    close = cut_ms + timeframe_ms(base_timeframe)
    cut = {s: f[f["timestamp"].to_numpy() <= cut_ms] for s, f in candles.items()}
    if higher is None:
        return cut, None
    cut_higher = {
        s: {
            tf: h[h["timestamp"].to_numpy() + timeframe_ms(tf) <= close] for tf, h in frames.items()
        }
        for s, frames in higher.items()
    }
    return cut, cut_higher


def prefix_violations(
    features: FeaturesFn,
    candles: Candles,
    higher: Higher,
    cuts: Iterable[int],
    base_timeframe: str = "1h",
    atol: float = 0.0,
) -> dict[str, str]:
    """Feature -> first row (market, time, values) where cutting the future changed a value.

    `cuts` are base open times (ms). Values must be equal (NaN equal to NaN), or within `atol`.
    An empty dict is the guarantee.
    """
    full = features(candles, higher)
    names = [c for c in full.columns if c not in ("market", "timestamp")]
    stamps = full["timestamp"]
    found: dict[str, str] = {}
    for cut_ms in cuts:
        part = features(*known_at(candles, higher, cut_ms, base_timeframe))
        ref = full[(stamps <= pd.Timestamp(cut_ms, unit="ms", tz="UTC")).to_numpy()]
        if (
            len(ref) != len(part)
            or not (ref["market"].to_numpy() == part["market"].to_numpy()).all()
        ):
            found.setdefault("<rows>", f"cut {cut_ms}: {len(part)} rows, expected {len(ref)}")
            continue
        a, b = ref[names].to_numpy(), part[names].to_numpy()
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if atol:
            with np.errstate(invalid="ignore"):
                same |= np.abs(a - b) <= atol
        for j in np.flatnonzero(~same.all(axis=0)):
            if names[j] in found:
                continue
            i = int(np.flatnonzero(~same[:, j])[0])
            found[names[j]] = (
                f"cut at {pd.Timestamp(cut_ms, unit='ms', tz='UTC')}: "
                f"{ref['market'].iloc[i]} {ref['timestamp'].iloc[i]}: "
                f"full history {a[i, j]!r}, candles up to the cut {b[i, j]!r}"
            )
    return found
