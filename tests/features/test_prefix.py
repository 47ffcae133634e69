"""No look-ahead, checked by prefix invariance: cutting the future changes no earlier value.

The same checker (`prefix_violations`) runs on real candles, on synthetic random walks with
gaps and staggered listings, and on deliberately leaky variants it must catch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.data.aggregate import aggregate
from pipeline.features.compute import compute_features
from pipeline.features.leakage import prefix_violations

HOUR = 3_600_000
SYMBOLS = {"BTCUSDT": "BTC/USDT:USDT", "ETHUSDT": "ETH/USDT:USDT", "SOLUSDT": "SOL/USDT:USDT"}


def random_walks(seed: int, n: int, markets: int = 3) -> dict[str, pd.DataFrame]:
    """Geometric random walks sharing a common factor, with volume; one market listed later,
    one with a 5-hour gap, so the cross-market and gap paths are exercised too."""
    rng = np.random.default_rng(seed)
    start = 1_600_000_000_000 // 86_400_000 * 86_400_000 + 5 * HOUR
    common = rng.normal(0.0, 0.006, n)
    frames = {}
    for k in range(markets):
        r = 0.8 * common + rng.normal(0.0, 0.005, n)
        close = 50.0 * (k + 1) * np.exp(np.cumsum(r))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, 0.0005, n))
        wick = np.exp(np.abs(rng.normal(0.0, 0.003, (2, n))))
        frame = pd.DataFrame(
            {
                "timestamp": start + np.arange(n, dtype="int64") * HOUR,
                "open": open_,
                "high": np.maximum(open_, close) * wick[0],
                "low": np.minimum(open_, close) / wick[1],
                "close": close,
                "volume": np.exp(rng.normal(8.0 + k, 0.6, n)) * (1.0 + 40.0 * np.abs(r)),
            }
        )
        if k == 1:
            frame = frame.drop(index=range(n // 2, n // 2 + 5))
        if k == 2:
            frame = frame.iloc[n // 5 :]
        frames[f"SYN{k}/USDT:USDT"] = frame.reset_index(drop=True)
    return frames


def features_1h(candles, higher):
    return compute_features(candles, "1h", higher)


def random_cuts(candles, count: int, seed: int) -> list[int]:
    stamps = np.unique(np.concatenate([f["timestamp"].to_numpy() for f in candles.values()]))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(stamps[1:], size=count, replace=False).tolist())


def sample_slice(sample_frames, start: int, rows: int) -> dict[str, pd.DataFrame]:
    return {
        sym: sample_frames[mid].iloc[start : start + rows].reset_index(drop=True)
        for mid, sym in SYMBOLS.items()
    }


def real_higher(candles):
    return {s: {tf: aggregate(f, "1h", tf) for tf in ("4h", "1d")} for s, f in candles.items()}


def test_sample_data_is_prefix_invariant(sample_frames):
    # 5000 hours: long enough for every warm-up (the 1d MACD's is 3742 hours).
    candles = sample_slice(sample_frames, 9_000, 5_000)
    higher = real_higher(candles)
    cuts = random_cuts(candles, 14, seed=7)
    cuts += [int(candles["BTC/USDT:USDT"]["timestamp"].iloc[-1]) - 5 * HOUR]
    assert prefix_violations(features_1h, candles, higher, cuts) == {}


def test_synthetic_walks_are_prefix_invariant():
    candles = random_walks(seed=3, n=4_200)
    cuts = random_cuts(candles, 12, seed=11)
    assert prefix_violations(features_1h, candles, None, cuts) == {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cut=st.floats(0.02, 1.0))
def test_prefix_invariance_property(seed, cut):
    candles = random_walks(seed, n=700)
    stamps = np.sort(np.concatenate([f["timestamp"].to_numpy() for f in candles.values()]))
    cut_ms = int(stamps[int(cut * (len(stamps) - 1))])
    assert prefix_violations(features_1h, candles, None, [cut_ms]) == {}


def test_coarser_base_timeframe_is_prefix_invariant(sample_frames):
    hourly = sample_slice(sample_frames, 0, 4_000)
    candles = {s: aggregate(f, "1h", "4h") for s, f in hourly.items()}

    def features_4h(c, h):
        return compute_features(c, "4h", h)

    cuts = random_cuts(candles, 8, seed=5)
    assert prefix_violations(features_4h, candles, None, cuts, base_timeframe="4h") == {}


# -- the checker can fail ------------------------------------------------------------------


def leaky_features(candles, higher):
    """compute_features plus three planted leaks the checker must name, and nothing else."""
    out = compute_features(candles, "1h", higher)
    # 1. a feature taken from the next candle
    out["ret_1"] = out.groupby("market", sort=False)["ret_1"].shift(-1)
    # 2. a normalisation fitted on the whole history
    z = out.groupby("market", sort=False)["vol_z_24"]
    out["vol_z_24"] = (out["vol_z_24"] - z.transform("mean")) / z.transform("std")
    # 3. a higher-timeframe value joined on the 4h candle's OPEN time
    for symbol, frame in candles.items():
        four = higher[symbol]["4h"] if higher else aggregate(frame, "1h", "4h")
        ret = np.log(four["close"]).diff().to_numpy()
        pos = np.searchsorted(four["timestamp"], frame["timestamp"], side="right") - 1
        joined = np.where(pos >= 0, ret[np.clip(pos, 0, None)], np.nan)
        out.loc[(out["market"] == symbol).to_numpy(), "htf_4h_ret"] = joined
    return out


def test_checker_catches_planted_leaks(sample_frames):
    candles = sample_slice(sample_frames, 20_000, 1_500)
    higher = real_higher(candles)
    cuts = random_cuts(candles, 10, seed=1)
    found = prefix_violations(leaky_features, candles, higher, cuts)
    assert set(found) == {"ret_1", "vol_z_24", "htf_4h_ret"}, found


def test_checker_catches_open_time_join_on_synthetic_data():
    candles = random_walks(seed=9, n=600)
    found = prefix_violations(leaky_features, candles, None, random_cuts(candles, 8, seed=2))
    assert {"ret_1", "htf_4h_ret"} <= set(found)
