"""The candle schema refuses each kind of bad candle and says which rule, where."""

import numpy as np
import pandas as pd
import pytest

from pipeline.data.candles import candle_frame
from pipeline.data.schema import CandleValidationError, find_gaps, validate_candles

H = 3_600_000


def good(n: int = 5) -> pd.DataFrame:
    rows = [[i * H, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0] for i in range(n)]
    return candle_frame(rows)


def test_good_candles_pass() -> None:
    frame = good()
    assert validate_candles(frame, "BTC/USDT:USDT", "1h") is frame


@pytest.mark.parametrize(
    ("mutate", "rule", "bad_index"),
    [
        (
            lambda f: f.__setitem__("high", f["high"].where(f.index != 2, 50.0)),
            "high_at_least_open_and_close",
            2,
        ),
        (
            lambda f: f.__setitem__("low", f["low"].where(f.index != 3, 500.0)),
            "low_at_most_open_and_close",
            3,
        ),
        (
            lambda f: f.__setitem__("close", f["close"].where(f.index != 1, np.nan)),
            "prices_positive_and_finite",
            1,
        ),
        (
            lambda f: f.__setitem__("open", f["open"].where(f.index != 4, -1.0)),
            "prices_positive_and_finite",
            4,
        ),
        (
            lambda f: f.__setitem__("volume", f["volume"].where(f.index != 0, -5.0)),
            "volume_non_negative_and_finite",
            0,
        ),
        (
            lambda f: f.__setitem__(
                "timestamp", f["timestamp"].where(f.index != 2, 2 * H + 60_000)
            ),
            "timestamp_on_1h_grid",
            2,
        ),
    ],
)
def test_each_rule_is_named_with_market_timeframe_and_row(
    mutate, rule: str, bad_index: int
) -> None:
    frame = good()
    mutate(frame)
    with pytest.raises(CandleValidationError) as caught:
        validate_candles(frame, "ETH/USDT:USDT", "1h")
    err = caught.value
    assert err.rule == rule
    assert bad_index in err.offending.index
    message = str(err)
    assert message.startswith("ETH/USDT:USDT 1h:")
    assert rule in message


def test_duplicate_timestamp_is_reported_as_such() -> None:
    frame = pd.concat([good(3), good(3).iloc[[1]]]).sort_values("timestamp", kind="stable")
    frame = frame.reset_index(drop=True)
    with pytest.raises(CandleValidationError, match="timestamps_unique") as caught:
        validate_candles(frame, "BTC/USDT:USDT", "1h")
    assert len(caught.value.offending) == 2


def test_descending_timestamps_are_refused() -> None:
    frame = good(4).iloc[::-1].reset_index(drop=True)
    with pytest.raises(CandleValidationError, match="timestamps_ascending"):
        validate_candles(frame, "BTC/USDT:USDT", "1h")


def test_daily_grid_is_utc_midnight() -> None:
    frame = candle_frame([[86_400_000 + H, 1.0, 1.0, 1.0, 1.0, 0.0]])
    with pytest.raises(CandleValidationError, match="timestamp_on_1d_grid"):
        validate_candles(frame, "BTC/USDT:USDT", "1d")


def test_gaps_are_counted_not_filled() -> None:
    ts = np.array([0, H, 4 * H, 5 * H, 9 * H])
    report = find_gaps(ts, "1h")
    assert report.missing == 2 + 3
    assert report.ranges == [(2 * H, 3 * H), (6 * H, 8 * H)]
    assert find_gaps(np.array([0, H, 2 * H]), "1h").missing == 0
