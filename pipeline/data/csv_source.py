"""Candle folders: one `MARKETID.csv[.gz]` of 1h candles per market (see shared/data/README.md),
and optionally `MARKETID_funding.csv[.gz]` beside it (columns funding_ms, rate)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from pandas.io.parsers.readers import STR_NA_VALUES

from pipeline.data.aggregate import aggregate
from pipeline.data.candles import COLUMNS
from pipeline.data.schema import refused, validate_candles
from pipeline.exchange.markets import UnknownMarketError, market_id, symbol_from_id

BASE_TIMEFRAME = "1h"
FUNDING_SUFFIX = "_funding"


def _unreadable(path: Path, err: ValueError, limit: int = 3) -> list[str]:
    """The first cells of `path` that are not what their column holds, in words (line numbers
    as an editor shows them); pandas' own message when the file does not even split."""
    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c", index_col=False)
    except ValueError:
        return [f"{path.name}: {err}"]
    problems: list[str] = []
    for column in (c for c in COLUMNS if c in text.columns):
        for line, cell in enumerate(text[column].tolist(), start=2):
            if not _reads_as(column, cell):
                kind = "an integer" if column == "timestamp" else "a number"
                problems.append(f"{path.name} line {line}: {column} {cell!r} is not {kind}")
                if len(problems) >= limit:
                    return problems
    return problems or [f"{path.name}: {err}"]


def _reads_as(column: str, cell: str) -> bool:
    """Whether pandas reads `cell` in `column` (an int64 timestamp; a float64, NaN allowed)."""
    if column == "timestamp":
        return cell.strip().lstrip("+-").isdigit()
    if cell.strip() in STR_NA_VALUES or not cell.strip():
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


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
        """Candles as stored, parsed but not validated (validation is the caller's gate).

        A file that does not parse as candles (a cell that is no number, a row with more
        fields than the header, a column missing) is refused with CandleValidationError, as a
        broken rule is: rule `csv_readable` or `columns_present`, the cells at fault named.
        """
        path = self.file_for(symbol)
        try:
            with warnings.catch_warnings():
                # A line longer than the header: pandas warns and cuts it (index_col=False)
                # rather than shift every value one column left (its default). Refuse it.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    dtype={"timestamp": "int64", **{c: "float64" for c in COLUMNS[1:]}},
                    engine="c",
                    index_col=False,
                    # The default parser is off by an ulp on some 17-digit values; this one
                    # reads each value as Python's float() does (about 2x slower, still ms).
                    float_precision="round_trip",
                )
        except pd.errors.ParserWarning:
            problem = f"{path.name}: lines with more fields than the header names"
            raise refused(symbol, timeframe, "csv_readable", [problem]) from None
        except ValueError as err:  # pandas' ParserError and EmptyDataError are ValueErrors
            raise refused(symbol, timeframe, "csv_readable", _unreadable(path, err)) from None
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            problem = f"{path.name} has no column(s) {', '.join(missing)}"
            raise refused(symbol, timeframe, "columns_present", [problem])
        frame = frame[list(COLUMNS)]
        if timeframe == BASE_TIMEFRAME:
            return frame
        # Aggregating unvalidated hours would hide their faults inside the buckets.
        validate_candles(frame, symbol, BASE_TIMEFRAME)
        return aggregate(frame, BASE_TIMEFRAME, timeframe)
