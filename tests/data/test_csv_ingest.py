"""Malformed candle files fail with the rule named and leave the table as it was."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.ingest import CsvCandleSource, ingest_partition
from pipeline.data.schema import CandleValidationError
from pipeline.exchange.markets import UnknownMarketError
from pipeline.store.candles import load_candles
from tests.helpers.folders import write_folder

SYM = "BTC/USDT:USDT"


def _corrupt(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = frame.copy()
    if how == "high_below_close":
        frame.loc[200, "high"] = frame.loc[200, "close"] - 1.0
    elif how == "duplicate":
        frame = pd.concat([frame.iloc[:201], frame.iloc[[200]], frame.iloc[201:]])
    elif how == "nan":
        frame.loc[200, "close"] = np.nan
    elif how == "off_grid":
        frame.loc[200, "timestamp"] += 60_000
    return frame.reset_index(drop=True)


@pytest.mark.parametrize(
    ("how", "rule"),
    [
        ("high_below_close", "high_at_least_open_and_close"),
        ("duplicate", "timestamps_unique"),
        ("nan", "prices_positive_and_finite"),
        ("off_grid", "timestamp_on_1h_grid"),
    ],
)
def test_malformed_batch_is_refused_whole(db, tmp_path: Path, sample_frames, how, rule) -> None:
    good = sample_frames["BTCUSDT"].iloc[:300]
    # The table already holds the first 100 hours; the new batch holds a bad row.
    write_folder(tmp_path / "before", {"BTCUSDT": good.iloc[:100]})
    ingest_partition(db, CsvCandleSource(str(tmp_path / "before")), SYM, "1h", 0)
    with db.connection() as conn:
        before = load_candles(conn, "binanceusdm", SYM, "1h")

    bad_dir = write_folder(tmp_path / "bad", {"BTCUSDT": _corrupt(good, how)})
    with pytest.raises(CandleValidationError) as caught:
        ingest_partition(db, CsvCandleSource(str(bad_dir)), SYM, "1h", 0)
    message = str(caught.value)
    assert message.startswith(f"{SYM} 1h:")
    assert rule in message
    expected_time = pd.Timestamp(good["timestamp"].iloc[200], unit="ms").strftime("%Y-%m-%dT%H")
    assert expected_time in message  # the first offending row is shown
    with db.connection() as conn:
        after = load_candles(conn, "binanceusdm", SYM, "1h")
    pd.testing.assert_frame_equal(before, after)


def test_bad_hours_fail_the_aggregated_timeframes_too(db, tmp_path: Path, sample_frames) -> None:
    bad_dir = write_folder(
        tmp_path / "bad", {"BTCUSDT": _corrupt(sample_frames["BTCUSDT"].iloc[:300], "nan")}
    )
    with pytest.raises(CandleValidationError, match="prices_positive_and_finite"):
        ingest_partition(db, CsvCandleSource(str(bad_dir)), SYM, "4h", 0)


def test_unknown_market_names_what_the_folder_has(db, small_dir: Path) -> None:
    with pytest.raises(UnknownMarketError, match=r"DOGE/USDT:USDT.*BTCUSDT, ETHUSDT"):
        ingest_partition(db, CsvCandleSource(str(small_dir)), "DOGE/USDT:USDT", "1h", 0)


def test_gaps_are_counted_and_kept(db, tmp_path: Path, sample_frames) -> None:
    hours = sample_frames["BTCUSDT"].iloc[:100].drop(index=[40, 41, 42]).reset_index(drop=True)
    folder = write_folder(tmp_path / "gappy", {"BTCUSDT": hours})
    result = ingest_partition(db, CsvCandleSource(str(folder)), SYM, "1h", 0)
    assert (result.rows_added, result.gaps) == (97, 3)
    four = ingest_partition(db, CsvCandleSource(str(folder)), SYM, "4h", 0)
    # the 4h bucket holding the missing hours is not invented; the gap shows there too
    assert four.gaps >= 1
