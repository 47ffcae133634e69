"""Build a candle source from plain options (shared by the CLI and the Dagster resource)."""

from __future__ import annotations

from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.data.ingest import CandleSource, CsvCandleSource
from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.exchange.retry import RetryPolicy

SOURCES = ("ccxt", "csv")


def open_source(
    source: str,
    exchange: str = DEFAULT_EXCHANGE,
    api_url: str | None = None,
    data_dir: str | None = None,
    retry: RetryPolicy | None = None,
    timeout_ms: int = 10_000,
) -> CandleSource:
    if source == "ccxt":
        from pipeline.exchange.client import make_exchange  # ccxt: loaded when a client is made

        return CcxtCandleSource(make_exchange(exchange, api_url, timeout_ms), retry)
    if source == "csv":
        if not data_dir:
            raise ValueError(
                "the csv source needs a candle folder (--data-dir or SIGNALS_DATA_DIR)"
            )
        return CsvCandleSource(data_dir, exchange)
    raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
