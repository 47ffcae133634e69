"""Higher timeframes from hours: checked against an independent pandas computation."""

import numpy as np
import pandas as pd

from pipeline.data.aggregate import aggregate
from tests.helpers.candles import independent

H = 3_600_000


def test_btc_4h_and_1d_match_pandas(sample_frames: dict[str, pd.DataFrame]) -> None:
    hours = sample_frames["BTCUSDT"]
    for timeframe, rule, n, expected_rows in (("4h", "4h", 4, 6988), ("1d", "1D", 24, 1164)):
        ours = aggregate(hours, "1h", timeframe)
        theirs = independent(hours, rule, n)
        assert len(ours) == expected_rows
        assert (ours["timestamp"].to_numpy() == theirs["timestamp"].to_numpy()).all()
        for col in ("open", "high", "low", "close"):
            assert (ours[col].to_numpy() == theirs[col].to_numpy()).all(), col
        # Sums may differ in the last bit with summation order.
        np.testing.assert_allclose(ours["volume"], theirs["volume"], rtol=1e-12)


def test_incomplete_buckets_are_dropped() -> None:
    rows = [[i * H, 10.0, 11.0, 9.0, 10.0, 1.0] for i in range(12) if i != 5]  # hour 5 missing
    frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    out = aggregate(frame, "1h", "4h")
    assert out["timestamp"].tolist() == [0, 8 * H]  # the 04:00 bucket lacks an hour
    assert out["volume"].tolist() == [4.0, 4.0]


def test_first_partial_day_of_the_sample_is_not_a_candle(sample_frames) -> None:
    days = aggregate(sample_frames["BTCUSDT"], "1h", "1d")
    assert pd.Timestamp(days["timestamp"].iloc[0], unit="ms").isoformat() == "2020-10-24T00:00:00"
