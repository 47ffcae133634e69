"""Chronological splits: an embargo of at least window + horizon candles between splits."""

import pandas as pd
import pytest

from pipeline.model.dataset import make_windows
from pipeline.model.splits import SplitConfig, chronological_split, split_boundaries
from tests.helpers.model import feature_columns, synthetic_frame

HOUR = pd.Timedelta(hours=1)


def windows(window: int):
    frame = synthetic_frame(markets=2, rows=24 * 20, features=3)
    return make_windows(frame, feature_columns(frame), window, "1h")


@pytest.mark.parametrize(
    ("window", "horizon", "embargo"), [(8, 1, None), (24, 3, None), (4, 1, 50)]
)
def test_embargo_separates_every_pair_of_splits(window: int, horizon: int, embargo) -> None:
    cfg = SplitConfig(
        "2021-01-01", "2021-01-08", "2021-01-13", "2021-01-19", window, horizon, embargo=embargo
    )
    splits = chronological_split(windows(window), cfg)
    gap = max(window + horizon, embargo or 0)
    pairs = [(splits.train, splits.validation), (splits.validation, splits.test)]
    for before, after in pairs:
        assert len(before) and len(after)
        assert after.timestamp.min() - before.timestamp.max() >= gap * HOUR
        # the later split's first window row opens after the earlier split's last label closed
        last_label_close = before.timestamp.max() + (horizon + 1) * HOUR
        assert after.timestamp.min() - (window - 1) * HOUR >= last_label_close
    assert splits.train.timestamp.max() + horizon * HOUR <= pd.Timestamp("2021-01-08", tz="UTC")
    assert splits.test.timestamp.max() + horizon * HOUR <= pd.Timestamp("2021-01-19", tz="UTC")
    record = splits.record()
    assert record["embargo_candles"] == gap
    assert record["windows"]["validation"] == len(splits.validation)
    first_val = pd.Timestamp(record["validation"]["first_decision"])
    assert first_val - pd.Timestamp(record["train"]["last_decision"]) == gap * HOUR


def test_no_test_split_and_bad_configs() -> None:
    ws = windows(8)
    cfg = SplitConfig("2021-01-01", "2021-01-08", "2021-01-13", window=8)
    splits = chronological_split(ws, cfg)
    assert splits.test is None and "test" not in split_boundaries(cfg)
    assert len(splits.train) + len(splits.validation) < len(ws)
    with pytest.raises(ValueError, match="windows of 8"):
        chronological_split(ws, SplitConfig("2021-01-01", "2021-01-08", "2021-01-13", window=16))
    with pytest.raises(ValueError, match="validation split is empty"):
        split_boundaries(SplitConfig("2021-01-01", "2021-01-08", "2021-01-08T12:00", window=24))
