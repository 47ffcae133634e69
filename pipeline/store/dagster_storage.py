"""Where Dagster keeps its runs, event logs and schedules locally: a database of its own on
the project's PostgreSQL server (dagster-postgres), so one server holds everything and the
UI, the daemon and `signals run` read the same history.

The local instance's `dagster.yaml` (pipeline/dagster_dev.yaml) reads the URL from
`SIGNALS_DAGSTER_PG_URL`; `signals run` sets it, and `make ui` asks `signals db dagster-url`.
"""

from __future__ import annotations

import psycopg

from pipeline.store.studies import database_on_server, sqlalchemy_url

ENV_DAGSTER_PG_URL = "SIGNALS_DAGSTER_PG_URL"


def dagster_database_name(server_url: str) -> str:
    """`signals_dagster` beside the default database, else `<database>_dagster`: each
    project database (a test's, say) gets Dagster storage of its own."""
    dbname = psycopg.conninfo.conninfo_to_dict(server_url).get("dbname") or "postgres"
    return "signals_dagster" if dbname == "postgres" else f"{dbname}_dagster"


def dagster_storage_url(server_url: str) -> str:
    """The SQLAlchemy URL of Dagster's database, created if missing. The psycopg2 driver is
    named: SQLAlchemy 2.1 defaults to psycopg 3, on which dagster-postgres's NOTIFY fails."""
    libpq = database_on_server(server_url, dagster_database_name(server_url))
    return sqlalchemy_url(libpq, driver="postgresql+psycopg2")
