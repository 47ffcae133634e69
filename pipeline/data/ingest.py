"""Incremental, idempotent ingestion of one market × timeframe into the candles table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from pipeline.data.csv_source import CandleFolder
from pipeline.data.schema import validate_candles
from pipeline.data.timeframes import ms_to_iso, timeframe_ms
from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.store import candles as candle_store
from pipeline.store.database import Database

ProgressCallback = Callable[[int, int], None]


class CandleSource(Protocol):
    """Where candles come from: an exchange through ccxt, or a recorded folder."""

    @property
    def exchange_id(self) -> str: ...

    def fetch(
        self, symbol: str, timeframe: str, since_ms: int, on_page: ProgressCallback | None = None
    ) -> pd.DataFrame: ...

    def now_ms(self, what: str | None = None) -> int: ...


class CsvCandleSource:
    """A candle folder as a source. Its candles are recorded from `exchange_id`; its clock is
    the close of the newest candle in the folder, so "fresh" means "up to date with the file".
    """

    def __init__(self, data_dir: str, exchange_id: str = DEFAULT_EXCHANGE):
        self.folder = CandleFolder(data_dir)
        self._exchange_id = exchange_id
        self._now: int | None = None

    @property
    def exchange_id(self) -> str:
        return self._exchange_id

    def fetch(
        self, symbol: str, timeframe: str, since_ms: int, on_page: ProgressCallback | None = None
    ) -> pd.DataFrame:
        frame = self.folder.read(symbol, timeframe)
        frame = frame[frame["timestamp"] >= since_ms].reset_index(drop=True)
        if on_page:
            on_page(1, 1)
        return frame

    def now_ms(self, what: str | None = None) -> int:
        if self._now is None:
            step = timeframe_ms("1h")
            self._now = max(
                int(self.folder.read(s)["timestamp"].max()) + step for s in self.folder.symbols()
            )
        return self._now


@dataclass(frozen=True)
class PartitionResult:
    exchange: str
    symbol: str
    timeframe: str
    rows_added: int
    rows_updated: int
    rows_total: int
    first_ms: int | None
    last_ms: int | None
    gaps: int
    gap_ranges: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "market": self.symbol,
            "timeframe": self.timeframe,
            "rows_added": self.rows_added,
            "rows_total": self.rows_total,
            "first": ms_to_iso(self.first_ms),
            "last": ms_to_iso(self.last_ms),
            "gaps": self.gaps,
        }


def ingest_partition(
    db: Database,
    source: CandleSource,
    symbol: str,
    timeframe: str,
    since_ms: int,
    on_page: ProgressCallback | None = None,
) -> PartitionResult:
    """Fetch what is new since the last stored candle (or `since_ms`), validate, upsert.

    The whole batch is validated before anything is written, and written in one transaction:
    a bad candle leaves the table as it was.
    """
    step = timeframe_ms(timeframe)
    exchange = source.exchange_id
    with db.connection() as conn:
        before = candle_store.summary(conn, exchange, symbol, timeframe)
    start = before.last_ms + step if before.last_ms is not None else since_ms
    frame = source.fetch(symbol, timeframe, start, on_page)
    validate_candles(frame, symbol, timeframe)
    with db.connection() as conn:
        written = candle_store.upsert_candles(conn, exchange, symbol, timeframe, frame)
        after = candle_store.summary(conn, exchange, symbol, timeframe)
        missing = after.missing(step)
        ranges = candle_store.gap_ranges(conn, exchange, symbol, timeframe, step) if missing else []
    return PartitionResult(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        rows_added=written.inserted,
        rows_updated=written.updated,
        rows_total=after.rows,
        first_ms=after.first_ms,
        last_ms=after.last_ms,
        gaps=missing,
        gap_ranges=ranges,
    )
