"""Hand-written parts agree with TA-Lib (1e-6 after warm-up); TA-Lib features are wired right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from pipeline.data.aggregate import aggregate
from pipeline.features.compute import compute_features
from pipeline.features.cross_market import market_factor
from pipeline.features.higher_tf import bucket_closes
from pipeline.features.registry import warmups
from pipeline.features.rolling import Moments, Prefix, rolling_median_low

TOL = 1e-6


@pytest.fixture(scope="module")
def btc(sample_frames) -> pd.DataFrame:
    return sample_frames["BTCUSDT"].iloc[5_000:9_000].reset_index(drop=True)


@pytest.fixture(scope="module")
def features(sample_frames) -> pd.DataFrame:
    candles = {
        m: f.iloc[5_000:9_000].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT", "XRPUSDT")
    }
    return compute_features(candles)


def ohlcv(frame):
    return [
        np.ascontiguousarray(frame[k].to_numpy("float64"))
        for k in ("open", "high", "low", "close", "volume")
    ]


def close_after(ours, ref, start, tol=TOL):
    ours, ref = np.asarray(ours)[start:], np.asarray(ref)[start:]
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def test_log_returns_match_rocr(features, btc):
    c = btc["close"].to_numpy()
    mine = features[features["market"] == "BTCUSDT"]
    for k in (1, 2, 4, 8, 12, 24, 48):
        close_after(mine[f"ret_{k}"], np.log(talib.ROCR(c, k)), k)


def test_window_sums_means_and_std_match_talib(btc):
    _, h, lo, c, v = ohlcv(btc)
    r1 = np.r_[np.nan, np.diff(np.log(c))]
    for n in (10, 12, 24, 72, 168):
        close_after(Prefix(v).sum(n) / talib.SUM(v, n), np.ones(len(v)), n)  # relative
        close_after(Moments(r1).std(n), talib.STDDEV(r1, n, 1.0), n)
        hl2 = np.log(h / lo) ** 2
        close_after(Prefix(hl2).mean(n), talib.SMA(hl2, n), n)
    for n in (24, 168):  # volume z-score: raw volumes are large, compare the z values
        mean, std = Moments(v).mean_std(n)
        close_after((v - mean) / std, (v - talib.SMA(v, n)) / talib.STDDEV(v, n, 1.0), n)


def test_realised_vol_and_zscore_columns_match_talib(features, btc):
    _, _, _, c, v = ohlcv(btc)
    mine = features[features["market"] == "BTCUSDT"]
    r1 = np.r_[np.nan, np.diff(np.log(c))]
    for n in (12, 24, 72, 168):
        close_after(mine[f"rv_{n}"], talib.STDDEV(r1, n, 1.0), n)
    close_after(mine["vol_z_24"], (v - talib.SMA(v, 24)) / talib.STDDEV(v, 24, 1.0), 23)


def test_cross_market_correlation_and_beta_match_talib(features, sample_frames):
    candles = {
        m: f.iloc[5_000:9_000].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT", "XRPUSDT")
    }
    factor = market_factor(candles.values(), 3_600_000).values
    r = np.r_[np.nan, np.diff(np.log(candles["ETHUSDT"]["close"].to_numpy()))]
    mine = features[features["market"] == "ETHUSDT"]
    close_after(mine["mkt_corr_72"], talib.CORREL(r, factor, 72), 72)
    beta = talib.CORREL(r, factor, 168) * talib.STDDEV(r, 168, 1.0) / talib.STDDEV(factor, 168, 1.0)
    close_after(mine["mkt_beta_168"], beta, 168)
    close_after(mine["mkt_ret_24"], talib.SUM(factor, 24), 24)
    # The factor itself: the plain mean of the three markets' returns.
    rets = [np.r_[np.nan, np.diff(np.log(f["close"].to_numpy()))] for f in candles.values()]
    close_after(factor, np.mean(rets, axis=0), 1, tol=1e-15)


def test_talib_features_are_talib_values(features, btc):
    _, h, lo, c, v = ohlcv(btc)
    mine = features[features["market"] == "BTCUSDT"]
    warm = warmups()
    line, signal, hist = talib.MACD(c, 12, 26, 9)
    assert np.isfinite(line[33:]).all()
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    ema = {n: talib.EMA(c, n) for n in (9, 20, 21, 50, 200)}
    atr20 = talib.ATR(h, lo, c, 20)
    expected = {
        "rsi_14": talib.RSI(c, 14),
        "macd_line_rel": line / c,
        "macd_hist_rel": hist / c,
        "macd_signal_rel": signal / c,
        "stoch_d": talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)[1],
        "cci_20": talib.CCI(h, lo, c, 20),
        "adx_14": talib.ADX(h, lo, c, 14),
        "ultosc": talib.ULTOSC(h, lo, c, 7, 14, 28),
        "atr_48_rel": talib.ATR(h, lo, c, 48) / c,
        "close_ema_200": c / ema[200] - 1,
        "ema_21_50": ema[21] / ema[50] - 1,
        "slope_72_rel": talib.LINEARREG_SLOPE(c, 72) / c,
        "aroonosc_25": talib.AROONOSC(h, lo, 25),
        "bb_pctb_20": (c - lower) / (upper - lower),
        "bb_width_20": (upper - lower) / middle,
        "keltner_pos_20": (c - (ema[20] - 2 * atr20)) / (4 * atr20),
        "donchian_pos_55": (c - talib.MIN(lo, 55)) / (talib.MAX(h, 55) - talib.MIN(lo, 55)),
        "mfi_14": talib.MFI(h, lo, c, v, 14),
        "adosc_rel": talib.ADOSC(h, lo, c, v, 3, 10) / talib.SUM(v, 10),
        "obv_slope_24": talib.LINEARREG_SLOPE(talib.OBV(c, v), 24) / talib.SMA(v, 24),
    }
    for name, ref in expected.items():
        close_after(mine[name], ref, warm[name])
        assert mine[name].iloc[: warm[name]].isna().all(), name


def test_higher_closes_are_aggregate_closes(btc):
    ts, c = btc["timestamp"].to_numpy(), btc["close"].to_numpy()
    gappy = btc.drop(index=range(1000, 1007)).reset_index(drop=True)
    for frame in (btc, gappy):
        for tf, ms in (("4h", 4 * 3_600_000), ("1d", 86_400_000)):
            ts, c = frame["timestamp"].to_numpy(), frame["close"].to_numpy()
            ref = aggregate(frame, "1h", tf)
            got_ts, got_close = bucket_closes(ts, c, 3_600_000, ms)
            assert np.array_equal(got_ts, ref["timestamp"].to_numpy())
            assert np.array_equal(got_close, ref["close"].to_numpy())


@pytest.mark.parametrize("n", [5, 6, 720, 721])
def test_rolling_lower_median_matches_pandas(btc, n):
    v = btc["volume"].to_numpy()
    ref = pd.Series(v).rolling(n).quantile(0.5, interpolation="lower").to_numpy()
    assert np.array_equal(rolling_median_low(v, n), ref, equal_nan=True)
