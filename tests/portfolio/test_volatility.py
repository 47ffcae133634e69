"""`annual_volatility`: the window, the annualisation, gaps, no look-ahead, pandas' answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data.timeframes import DAY_MS, HOUR_MS
from pipeline.portfolio.volatility import annual_volatility, window_candles

T0 = 1_672_531_200_000  # 2023-01-01T00:00Z


def walk(seed: int, n: int, markets: int = 1, step: int = HOUR_MS):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n, markets)), axis=0))
    return close, T0 + step * np.arange(n, dtype=np.int64)


def test_window_sizes() -> None:
    assert window_candles("1d", 30) == 30
    assert window_candles("4h", 30) == 180
    assert window_candles("1h", 30) == 720
    assert window_candles("1h", 0.5) == 12


def test_a_window_by_hand() -> None:
    close = np.array([100.0, 110.0, 99.0, 108.9, 100.0])
    ts = T0 + DAY_MS * np.arange(5)
    vol = annual_volatility(close, ts, "1d", days=3)  # 3 returns a window
    r = [math.log(110 / 100), math.log(99 / 110), math.log(108.9 / 99), math.log(100 / 108.9)]

    def std(x):
        mean = sum(x) / len(x)
        return math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1))

    assert np.isnan(vol[:3]).all()  # the first window ends at the 4th close
    assert vol[3] == pytest.approx(std(r[0:3]) * math.sqrt(365), rel=1e-12)
    assert vol[4] == pytest.approx(std(r[1:4]) * math.sqrt(365), rel=1e-12)


def test_annualised_by_candles_a_365_day_year() -> None:
    close, ts = walk(1, 200, step=4 * HOUR_MS)
    vol = annual_volatility(close[:, 0], ts, "4h", days=10)  # 60 returns
    r = np.diff(np.log(close[:, 0]))
    assert vol[60] == pytest.approx(np.std(r[:60], ddof=1) * math.sqrt(365 * 6), rel=1e-12)
    assert np.isnan(vol[59]) and np.isfinite(vol[60:]).all()


def test_a_missing_candle_voids_the_windows_across_it() -> None:
    close, ts = walk(2, 60)
    ts[30:] += HOUR_MS  # the candle between rows 29 and 30 is missing
    vol = annual_volatility(close[:, 0], ts, "1h", days=0.5)  # 12 returns a window
    assert np.isfinite(vol[12:30]).all()
    assert np.isnan(vol[30:42]).all()  # every window holding the return 29 → 30
    assert np.isfinite(vol[42:]).all()


def test_bad_closes_void_their_windows() -> None:
    close, ts = walk(3, 40)
    close[20, 0] = np.nan
    close[30, 0] = 0.0
    vol = annual_volatility(close, ts, "1h", days=0.25)  # 6 returns
    assert np.isnan(vol[20:27, 0]).all() and np.isfinite(vol[27:30, 0]).all()
    assert np.isnan(vol[30:37, 0]).all() and np.isfinite(vol[37:, 0]).all()


def test_columns_are_markets() -> None:
    close, ts = walk(4, 100, markets=3)
    close[:40, 1] = np.nan  # listed later
    panel = annual_volatility(close, ts, "1h", days=1)
    for j in range(3):
        col = annual_volatility(close[:, j], ts, "1h", days=1)
        assert panel[:, j].tobytes() == col.tobytes()
    assert np.isnan(panel[:64, 1]).all() and np.isfinite(panel[64:, 1]).all()


def test_bad_arguments() -> None:
    close, ts = walk(5, 10)
    with pytest.raises(ValueError, match="at least 2"):
        annual_volatility(close, ts, "1d", days=1)
    with pytest.raises(ValueError, match="timeframe"):
        annual_volatility(close, ts, "7h")
    with pytest.raises(ValueError, match="timestamps"):
        annual_volatility(close, ts[:-1], "1h")
    assert annual_volatility(np.zeros(0), np.zeros(0, dtype=np.int64), "1h").shape == (0,)


@st.composite
def series(draw):
    """A random walk of 1–3 markets with a few missing candles and a window of 2–30."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(2, 150))
    markets = draw(st.integers(1, 3))
    hours = draw(st.integers(2, 30))
    close, _ = walk(seed, n, markets)
    steps = np.random.default_rng(seed).choice([1] * 20 + [2, 3], size=n - 1)
    ts = T0 + HOUR_MS * np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
    return close, ts, hours / 24


@settings(max_examples=150, deadline=None, derandomize=True)
@given(series(), st.data())
def test_no_look_ahead_appending_candles_changes_no_earlier_value(case, data) -> None:
    close, ts, days = case
    full = annual_volatility(close, ts, "1h", days=days)
    cut = data.draw(st.integers(1, len(ts)))
    prefix = annual_volatility(close[:cut], ts[:cut], "1h", days=days)
    assert prefix.tobytes() == full[:cut].tobytes()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(series())
def test_matches_pandas_rolling_std(case) -> None:
    close, ts, days = case
    window = window_candles("1h", days)
    r = pd.DataFrame(np.log(close)).diff()
    r[np.r_[True, np.diff(ts) != HOUR_MS]] = np.nan
    want = r.rolling(window, min_periods=window).std(ddof=1).to_numpy() * math.sqrt(365 * 24)
    got = annual_volatility(close, ts, "1h", days=days)
    assert (np.isnan(got) == np.isnan(want)).all()
    np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
