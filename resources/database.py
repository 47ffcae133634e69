"""The PostgreSQL system of record as a Dagster resource."""

import dagster as dg

from pipeline.settings import Settings
from pipeline.store.database import Database, open_database


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL at `url`; with no URL, the embedded server under `home`/pg shared by all runs."""

    url: str | None = None
    home: str = ".signals"

    def database(self) -> Database:
        settings = Settings.from_env({"SIGNALS_HOME": self.home})
        return open_database(settings, url=self.url)
