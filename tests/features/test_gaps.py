"""A missing candle makes exactly the rows whose windows span it NaN, and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.features.compute import compute_features
from pipeline.features.registry import REGISTRY, feature_names, warmups

GAP_AT, GAP_LEN = 2_500, 3  # rows removed from BTC: hours 2500..2502 of the slice
REPRESENTATIVE = [
    "ret_1", "ret_24", "rv_24", "rv_168", "rsi_14", "macd_hist_rel", "close_ema_50",
    "bb_pctb_20", "vol_z_24", "logvol_chg_24", "open_gap", "mkt_corr_72", "rel_ret_24",
]  # fmt: skip


@pytest.fixture(scope="module")
def gapped(sample_frames):
    candles = {
        m: f.iloc[10_000:14_000].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    }
    whole = compute_features(candles)
    candles["BTCUSDT"] = (
        candles["BTCUSDT"].drop(index=range(GAP_AT, GAP_AT + GAP_LEN)).reset_index(drop=True)
    )
    return whole, compute_features(candles), candles


def btc(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["market"] == "BTCUSDT"].reset_index(drop=True)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_gap_blanks_exactly_the_spanning_rows(gapped, name):
    _, out, _ = gapped
    warm = warmups()[name]
    column = btc(out)[name].to_numpy()
    # Rows GAP_AT.. are the candles after the gap; the first `warm` of them span it.
    assert np.isnan(column[GAP_AT : GAP_AT + warm]).all()
    assert np.isfinite(column[GAP_AT + warm :]).all()
    assert np.isfinite(column[warm:GAP_AT]).all()


def test_rows_before_the_gap_are_untouched_and_other_markets_keep_values(gapped):
    whole, out, _ = gapped
    names = feature_names()
    before = btc(out)[names].to_numpy()[:GAP_AT]
    assert np.array_equal(before, btc(whole)[names].to_numpy()[:GAP_AT], equal_nan=True)
    # Other markets: their own features do not change; the factor averages the markets present.
    own = [s.name for s in REGISTRY if s.family != "cross"]
    eth_old = whole[whole["market"] == "ETHUSDT"][own].to_numpy()
    eth_new = out[out["market"] == "ETHUSDT"][own].to_numpy()
    assert np.array_equal(eth_old, eth_new, equal_nan=True)
    eth = out[out["market"] == "ETHUSDT"]
    assert np.isfinite(eth["mkt_ret_1"].to_numpy()[1:]).all()


def test_every_base_feature_restarts_after_the_gap(gapped):
    _, out, _ = gapped
    rows = btc(out)
    for spec in REGISTRY:
        if spec.timeframe != "base":
            continue
        column = rows[spec.name].to_numpy()
        assert np.isnan(column[GAP_AT : GAP_AT + spec.warmup]).all(), spec.name
        assert np.isfinite(column[GAP_AT + spec.warmup :]).all(), spec.name


def test_higher_timeframes_skip_the_broken_buckets(gapped):
    _, out, candles = gapped
    rows = btc(out)
    ts = candles["BTCUSDT"]["timestamp"].to_numpy()
    close = ts + 3_600_000
    first_missing = ts[GAP_AT - 1] + 3_600_000
    last_missing = ts[GAP_AT] - 3_600_000
    for tf, ms in (("4h", 4 * 3_600_000), ("1d", 86_400_000)):
        first_broken, last_broken = first_missing // ms * ms, last_missing // ms * ms
        # Rows whose last closed candle is a broken (dropped) bucket, or the first complete one
        # after it (no previous candle, so no return): NaN, never the stale earlier value.
        blank = (close >= first_broken + ms) & (close < last_broken + 3 * ms)
        before = close < first_broken + ms
        for suffix in ("ret", "rsi_14", "rv_20"):
            warm = warmups()[f"htf_{tf}_{suffix}"]
            column = rows[f"htf_{tf}_{suffix}"].to_numpy()
            assert np.isnan(column[blank]).all(), (tf, suffix)
            assert np.isfinite(column[before][warm:]).all(), (tf, suffix)
            assert np.isfinite(column[GAP_AT + warm :]).all(), (tf, suffix)
