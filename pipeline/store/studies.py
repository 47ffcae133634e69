"""Where hyperparameter studies live: Optuna's RDB storage in a database of its own on the
project's PostgreSQL server, so processes (or machines) pointed at one server share a study.

Budget accounting uses a PostgreSQL advisory lock around Optuna's `ask`, so N workers finish
exactly the budget: counting trials and creating the next one happen as one step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

STUDY_DATABASE = "signals_studies"
_BUDGET_LOCK = 7_262_025  # any constant, the same in every process


def study_database_url(server_url: str, name: str = STUDY_DATABASE) -> str:
    """The libpq URL of the studies' database on `server_url`'s server, created if missing."""
    return database_on_server(server_url, name)


def database_on_server(server_url: str, name: str) -> str:
    """The libpq URL of database `name` on `server_url`'s server, created if missing."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Another process may create it between the check and here: that is fine. Two
            # racing CREATEs fail with UniqueViolation on the catalog (workers starting together).
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def sqlalchemy_url(libpq_url: str, driver: str = "postgresql+psycopg") -> str:
    """The same database as a SQLAlchemy URL (default: the psycopg 3 driver, for Optuna;
    `postgresql+psycopg2` for dagster-postgres, whose NOTIFY needs client-side parameters)."""
    from sqlalchemy.engine import URL  # loaded with the study (or Dagster's storage) it names

    info = psycopg.conninfo.conninfo_to_dict(libpq_url)
    host = str(info.pop("host", "")) or None
    query = {}
    if host and host.startswith("/"):  # a Unix socket folder goes in the query
        query["host"], host = host, None
    return URL.create(
        driver,
        username=info.get("user"),
        password=info.get("password"),
        host=host,
        port=int(info["port"]) if info.get("port") else None,
        database=info.get("dbname"),
        query=query,
    ).render_as_string(hide_password=False)


@contextmanager
def budget_lock(libpq_url: str) -> Iterator[None]:
    """Held while a worker counts a study's trials and claims the next one."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_BUDGET_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_BUDGET_LOCK,))
