"""Candle folders: one `MARKETID.csv[.gz]` of 1h candles per market (see shared/data/README.md),
and optionally `MARKETID_funding.csv[.gz]` beside it (columns funding_ms, rate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data.aggregate import aggregate
from pipeline.data.candles import COLUMNS
from pipeline.data.schema import validate_candles
from pipeline.exchange.markets import UnknownMarketError, market_id, symbol_from_id

BASE_TIMEFRAME = "1h"
FUNDING_SUFFIX = "_funding"


class CandleFolder:
    """Read-only view of a candle folder; higher timeframes are aggregated from its 1h files."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir)
        if not self.path.is_dir():
            raise FileNotFoundError(f"candle folder not found: {self.path}")

    def market_ids(self) -> list[str]:
        names = {p.name.split(".")[0] for p in self.path.glob("*.csv*")}
        return sorted(n for n in names if not n.endswith(FUNDING_SUFFIX))

    def symbols(self) -> list[str]:
        return [symbol_from_id(m) for m in self.market_ids()]

    def file_for(self, symbol: str) -> Path:
        mid = market_id(symbol)
        for suffix in (".csv.gz", ".csv"):
            candidate = self.path / f"{mid}{suffix}"
            if candidate.exists():
                return candidate
        known = ", ".join(self.market_ids()) or "none"
        raise UnknownMarketError(
            f"unknown market {symbol}: no {mid}.csv[.gz] in {self.path} (markets there: {known})"
        )

    def funding_file(self, mid: str) -> Path | None:
        """The market's recorded funding history (`MARKETID_funding.csv[.gz]`), if there is one."""
        for suffix in (".csv.gz", ".csv"):
            candidate = self.path / f"{mid}{FUNDING_SUFFIX}{suffix}"
            if candidate.exists():
                return candidate
        return None

    def read(self, symbol: str, timeframe: str = BASE_TIMEFRAME) -> pd.DataFrame:
        """Candles as stored, parsed but not validated (validation is the caller's gate)."""
        path = self.file_for(symbol)
        frame = pd.read_csv(
            path,
            dtype={"timestamp": "int64", **{c: "float64" for c in COLUMNS[1:]}},
            engine="c",
        )
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        frame = frame[list(COLUMNS)]
        if timeframe == BASE_TIMEFRAME:
            return frame
        # Aggregating unvalidated hours would hide their faults inside the buckets.
        validate_candles(frame, symbol, BASE_TIMEFRAME)
        return aggregate(frame, BASE_TIMEFRAME, timeframe)
