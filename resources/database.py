"""The PostgreSQL system of record as a Dagster resource."""

from pathlib import Path

import dagster as dg

from pipeline.store.database import Database, open_database


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL at `url`; with no URL, the embedded server under `home`/pg shared by all runs."""

    url: str | None = None
    home: str = ".signals"

    def database(self) -> Database:
        if self.url:
            return open_database(url=self.url)
        return open_database(pgdata=Path(self.home).expanduser().resolve() / "pg")
