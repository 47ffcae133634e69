"""Recorded funding read from a folder of files, validated as an ingest is."""

import itertools
from pathlib import Path

import pytest

from pipeline.data.funding_rows import FundingHistoryError, read_funding_folder

SHARED_FUNDING = Path(__file__).resolve().parents[2].parent / "shared/data/binance-usdm-funding"


def test_the_shared_histories_are_read_and_markets_without_one_are_absent():
    if not (SHARED_FUNDING / "BTCUSDT_funding.csv.gz").exists():
        pytest.fail(f"sample funding missing: expected {SHARED_FUNDING}", pytrace=False)
    rows = read_funding_folder(SHARED_FUNDING, ["BTCUSDT", "SOLUSDT", "XRPUSDT"])
    assert sorted(rows) == ["BTCUSDT", "XRPUSDT"]  # SOL has no recorded history
    btc = rows["BTCUSDT"]
    assert len(btc) == 3494  # the README's count: every 8 h, 2020-10-23 08:00 → 2023-12-31 16:00
    assert all(b[0] - a[0] == 8 * 3_600_000 for a, b in itertools.pairwise(btc))
    assert btc[0][0] == 1603440000000


def test_a_file_with_a_repeated_time_or_a_missing_column_is_refused(tmp_path):
    (tmp_path / "AUSDT_funding.csv").write_text("funding_ms,rate\n0,0.0001\n0,0.0002\n")
    with pytest.raises(FundingHistoryError, match="repeats"):
        read_funding_folder(tmp_path, ["AUSDT"])
    (tmp_path / "AUSDT_funding.csv").write_text("time,rate\n0,0.0001\n")
    with pytest.raises(FundingHistoryError, match="missing column"):
        read_funding_folder(tmp_path, ["AUSDT"])
    with pytest.raises(FileNotFoundError, match="funding folder not found"):
        read_funding_folder(tmp_path / "nowhere", ["AUSDT"])
