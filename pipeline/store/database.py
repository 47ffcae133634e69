"""Connections to the system of record: a pooled PostgreSQL, embedded unless a URL is given."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg_pool import ConnectionPool

from pipeline.store.embedded import embedded_url
from pipeline.store.migrations import migrate


class Database:
    """One pool per process; migrations run once when it opens."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4):
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            # A cheap round-trip on checkout: a restarted server costs a reconnect, not an error.
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": False},
            name="signals",
        )
        self.pool.open(wait=True, timeout=30)
        with self.connection() as conn:
            migrate(conn)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self.pool.close()


_lock = threading.Lock()
_databases: dict[str, Database] = {}


class DatabaseSettings(Protocol):
    """Where the store is (pipeline.settings.Settings has both): the store never reads them."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def pgdata(self) -> Path: ...


def resolve_url(settings: DatabaseSettings) -> str:
    return settings.database_url or embedded_url(settings.pgdata)


def open_database(settings: DatabaseSettings | None = None, url: str | None = None) -> Database:
    """The process's pooled Database for `url` (or the settings' URL, or the embedded server)."""
    if url is None:
        if settings is None:
            raise ValueError("open_database needs a URL or the settings that name one")
        url = resolve_url(settings)
    with _lock:
        db = _databases.get(url)
        if db is None or db.pool.closed:
            db = _databases[url] = Database(url)
        return db


def fresh_database(server_url: str, name: str) -> str:
    """Drop and recreate database `name` on the server at `server_url`; returns its URL.

    A replay writes here, never into the real record.
    """
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def close_all() -> None:
    with _lock:
        for db in _databases.values():
            db.close()
        _databases.clear()
