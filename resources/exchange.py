"""Where candles come from, as a Dagster resource: an exchange through ccxt, or a CSV folder."""

import dagster as dg

from pipeline.data.ingest import CandleSource
from pipeline.data.sources import open_source
from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.exchange.retry import RetryPolicy


class CandleSourceResource(dg.ConfigurableResource):
    """ccxt (`exchange`, optionally at `api_url`: a testnet or the replay exchange) or `csv`."""

    source: str = "ccxt"
    exchange: str = DEFAULT_EXCHANGE
    api_url: str | None = None
    data_dir: str | None = None
    funding_dir: str | None = None  # recorded funding files (the csv source's funding_rates)
    since: str = "2019-09-01"
    retry_attempts: int = 5
    retry_backoff_s: float = 0.5
    timeout_ms: int = 10_000

    def open(self) -> CandleSource:
        retry = RetryPolicy(attempts=self.retry_attempts, backoff_s=self.retry_backoff_s)
        return open_source(
            self.source, self.exchange, self.api_url, self.data_dir, retry, self.timeout_ms
        )
