"""The PostgreSQL system of record as a Dagster resource."""

from pathlib import Path

import dagster as dg

from pipeline.store.database import Database, open_database
from pipeline.store.embedded import embedded_url


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL at `url`; with no URL, the embedded server under `home`/pg shared by all runs."""

    url: str | None = None
    home: str = ".signals"

    def database(self) -> Database:
        pgdata = Path(self.home).expanduser().resolve() / "pg"
        return open_database(url=self.url or embedded_url(pgdata))
