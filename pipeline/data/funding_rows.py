"""Funding rows as the exchange and the files give them: (settlement ms, rate), validated.

Kept apart from the ccxt ingest (`pipeline.data.funding`) so that reading a folder of funding
files, as every backtest verdict does, imports no exchange client.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pipeline.data.timeframes import ms_to_iso

# A funding rate this large (5 % per settlement) is a unit or parsing error, not a market.
MAX_ABS_RATE = 0.05
FundingRows = list[tuple[int, float]]


class FundingHistoryError(ValueError):
    """The exchange's funding history is not usable as it came: the message names the row."""


def validate_funding(rows: Iterable[tuple[int, float | None]], what: str) -> FundingRows:
    """Settlement times rounded to the second, each rate finite and below 5 %, strictly ascending.

    Binance stamps its 00/08/16 UTC settlements a few milliseconds late, so times are rounded
    (not snapped to an 8h grid: some markets settle every 4h or 1h). A repeated or
    out-of-order time means the pages overlapped or the exchange misbehaved: refused.
    """
    out: FundingRows = []
    for raw_ms, rate in rows:
        ms = (int(raw_ms) + 500) // 1000 * 1000
        if rate is None or not math.isfinite(rate):
            raise FundingHistoryError(f"{what}: funding rate at {ms_to_iso(ms)} is {rate!r}")
        if abs(rate) >= MAX_ABS_RATE:
            raise FundingHistoryError(
                f"{what}: funding rate {rate!r} at {ms_to_iso(ms)} exceeds {MAX_ABS_RATE:g}"
            )
        if out and ms <= out[-1][0]:
            word = "repeats" if ms == out[-1][0] else "comes before"
            raise FundingHistoryError(
                f"{what}: funding time {ms_to_iso(ms)} {word} {ms_to_iso(out[-1][0])}"
            )
        out.append((ms, float(rate)))
    return out


FUNDING_SUFFIX = "_funding"


def funding_file(folder: str | Path, market: str) -> Path | None:
    """`MARKETID_funding.csv[.gz]` in `folder`, if there is one."""
    for suffix in (".csv.gz", ".csv"):
        candidate = Path(folder) / f"{market}{FUNDING_SUFFIX}{suffix}"
        if candidate.exists():
            return candidate
    return None


def read_funding_file(path: str | Path, market: str) -> FundingRows:
    """A recorded funding history (columns funding_ms, rate), validated as an ingest is."""
    frame = pd.read_csv(path)
    missing = {"funding_ms", "rate"} - set(frame.columns)
    if missing:
        raise FundingHistoryError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return validate_funding(
        zip(frame["funding_ms"].astype("int64").tolist(), frame["rate"].tolist(), strict=True),
        f"{market} ({Path(path).name})",
    )


def read_funding_folder(folder: str | Path, markets: Iterable[str]) -> dict[str, FundingRows]:
    """Each market's recorded history found in `folder` (markets without a file are absent:
    the backtest charges them the stated constant and says how many settlements it filled)."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"funding folder not found: {folder}")
    out = {}
    for market in markets:
        path = funding_file(folder, market)
        if path is not None:
            out[market] = read_funding_file(path, market)
    return out
