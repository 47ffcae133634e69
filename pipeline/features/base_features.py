"""The 64 single-market, base-timeframe features of one contiguous run of candles.

The caller hands over a gap-free run (see `indicators.py`), so TA-Lib's recursions never
bridge a missing candle. Everything is a ratio, a return or an oscillator, so values compare
across markets; classic indicators are TA-Lib's own, called through the module (`talib.X`) so
the benchmark can record exactly which calls the set makes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import talib

from pipeline.data.timeframes import DAY_MS
from pipeline.features.registry import VOLUME_MEDIAN_DAYS
from pipeline.features.rolling import (
    Moments,
    Prefix,
    diff,
    lag,
    rolling_median_low,
    safe_log,
    safe_ratio,
)

_TWO_PI = 2.0 * math.pi

Arrays = dict[str, np.ndarray]


def base_features(
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    base_ms: int,
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, values) of every base feature of one gap-free run of candles, family by family.

    A generator, so the caller can store each family's columns before the next is computed:
    holding all 64 arrays at once grows the heap every call and costs page faults.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.log(c)
        r1 = Moments(diff(logc, 1))
        yield from _returns(logc).items()
        volatility = _volatility(h, lo, c, o, r1)
        yield from volatility.items()
        yield from _momentum(h, lo, c).items()
        yield from _trend(h, lo, c).items()
        yield from _bands(h, lo, c).items()
        yield from _volume(h, lo, c, v, volatility, base_ms).items()
        yield from _candle(o, h, lo, c, logc).items()
        yield from _calendar(ts).items()


def _returns(logc: np.ndarray) -> Arrays:
    return {f"ret_{k}": diff(logc, k) for k in (1, 2, 4, 8, 12, 24, 48)}


def _volatility(h, lo, c, o, r1: Moments) -> Arrays:
    out = {f"rv_{n}": r1.std(n) for n in (12, 24, 72, 168)}
    hl2 = np.log(h / lo) ** 2
    out["parkinson_24"] = np.sqrt(Prefix(hl2).mean(24) / (4.0 * math.log(2.0)))
    gk_term = 0.5 * hl2 - (2.0 * math.log(2.0) - 1.0) * np.log(c / o) ** 2
    out["garman_klass_24"] = np.sqrt(np.maximum(Prefix(gk_term).mean(24), 0.0))
    for n in (14, 48):
        out[f"atr_{n}_rel"] = talib.ATR(h, lo, c, n) / c
    return out


def _momentum(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> Arrays:
    out = {f"rsi_{n}": talib.RSI(c, n) for n in (7, 14, 28)}
    line, signal, hist = talib.MACD(c, 12, 26, 9)
    out["macd_line_rel"], out["macd_signal_rel"], out["macd_hist_rel"] = (
        line / c,
        signal / c,
        hist / c,
    )
    out["stoch_k"], out["stoch_d"] = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    out["willr_14"] = talib.WILLR(h, lo, c, 14)
    out["cci_20"] = talib.CCI(h, lo, c, 20)
    out["adx_14"] = talib.ADX(h, lo, c, 14)
    out["plus_di_14"] = talib.PLUS_DI(h, lo, c, 14)
    out["minus_di_14"] = talib.MINUS_DI(h, lo, c, 14)
    out["ultosc"] = talib.ULTOSC(h, lo, c, 7, 14, 28)
    return out


def _trend(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> Arrays:
    ema = {n: talib.EMA(c, n) for n in (9, 21, 50, 100, 200)}
    out = {f"close_ema_{n}": c / e - 1.0 for n, e in ema.items()}
    out["ema_9_21"] = ema[9] / ema[21] - 1.0
    out["ema_21_50"] = ema[21] / ema[50] - 1.0
    for n in (24, 72):
        out[f"slope_{n}_rel"] = talib.LINEARREG_SLOPE(c, n) / c
    out["aroonosc_25"] = talib.AROONOSC(h, lo, 25)
    return out


def _position(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Where x sits between low (0) and high (1); 0.5 when the band has no width."""
    return safe_ratio(x - low, high - low, where_zero=0.5)


def _bands(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> Arrays:
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    mid = talib.EMA(c, 20)
    atr = talib.ATR(h, lo, c, 20)
    out = {
        "bb_pctb_20": _position(c, lower, upper),
        "bb_width_20": (upper - lower) / middle,
        "keltner_pos_20": _position(c, mid - 2.0 * atr, mid + 2.0 * atr),
    }
    for n in (20, 55):
        out[f"donchian_pos_{n}"] = _position(c, talib.MIN(lo, n), talib.MAX(h, n))
    # The range of the 24 candles before this one: a close outside it is a breakout (<0, >1).
    out["range_pos_24"] = _position(c, lag(talib.MIN(lo, 24), 1), lag(talib.MAX(h, 24), 1))
    return out


def _volume(h, lo, c, v, done: Arrays, base_ms: int) -> Arrays:
    out: Arrays = {}
    vol = Moments(v)
    mean_v = {}
    for n in (24, 168):
        mean_v[n], std = vol.mean_std(n)
        out[f"vol_z_{n}"] = safe_ratio(v - mean_v[n], std, where_zero=0.0)
    logv = safe_log(v)
    out["logvol_chg_1"] = diff(logv, 1)
    out["logvol_chg_24"] = diff(logv, 24)
    out["obv_slope_24"] = safe_ratio(talib.LINEARREG_SLOPE(talib.OBV(c, v), 24), mean_v[24])
    out["mfi_14"] = talib.MFI(h, lo, c, v, 14)
    out["adosc_rel"] = safe_ratio(talib.ADOSC(h, lo, c, v, 3, 10), vol.first.sum(10))
    tpv = Prefix((h + lo + c) / 3.0 * v).sum(24)
    out["vwap_dev_24"] = c / safe_ratio(tpv, vol.first.sum(24)) - 1.0
    activity = safe_ratio(mean_v[24], mean_v[168])
    calm = safe_ratio(done["rv_24"], done["rv_168"])
    out["volume_per_vol"] = safe_log(safe_ratio(activity, calm))
    window = VOLUME_MEDIAN_DAYS * DAY_MS // base_ms
    out["logvol_rel_median_30d"] = logv - safe_log(rolling_median_low(v, window))
    return out


def _candle(o, h, lo, c, logc) -> Arrays:
    rng = h - lo
    # A candle with no range has no body and no wicks: 0, as TA-Lib's A/D line treats it.
    return {
        "body_rel": safe_ratio(c - o, rng, 0.0),
        "upper_wick_rel": safe_ratio(h - np.maximum(o, c), rng, 0.0),
        "lower_wick_rel": safe_ratio(np.minimum(o, c) - lo, rng, 0.0),
        "clv": safe_ratio((c - lo) - (h - c), rng, 0.0),
        "open_gap": np.log(o) - lag(logc, 1),
    }


# Lookup tables: one sine per minute of the day / day of the week, not one per row.
_MINUTE_ANGLE = np.arange(1440) / 60.0 * (_TWO_PI / 24.0)
_DAY_ANGLE = np.arange(7) * (_TWO_PI / 7.0)
_HOUR_SIN, _HOUR_COS = np.sin(_MINUTE_ANGLE), np.cos(_MINUTE_ANGLE)
_DOW_SIN, _DOW_COS = np.sin(_DAY_ANGLE), np.cos(_DAY_ANGLE)


def _calendar(ts: np.ndarray) -> Arrays:
    minute = (ts % DAY_MS) // 60_000
    dow = (ts // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return {
        "hour_sin": _HOUR_SIN[minute],
        "hour_cos": _HOUR_COS[minute],
        "dow_sin": _DOW_SIN[dow],
        "dow_cos": _DOW_COS[dow],
    }
