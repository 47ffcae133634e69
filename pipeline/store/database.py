"""Connections to the system of record: a pooled PostgreSQL, embedded unless a URL is given."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from pipeline.store.embedded import embedded_url
from pipeline.store.migrations import migrate

log = logging.getLogger(__name__)

# A checkout waits this long before asking whether the server still answers at all...
FIRST_WAIT_S = 5.0
# ...and at most this long in all (a busy pool, or a server coming back).
CHECKOUT_TIMEOUT_S = 30.0


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL did not answer within the bound: the command stops, nothing half-written."""


class Database:
    """One pool per process; migrations run once when it opens.

    A server that dies under the pool is noticed at the next checkout (after FIRST_WAIT_S):
    the embedded server is brought back with `restart` (crash recovery), an external one is
    waited for up to CHECKOUT_TIMEOUT_S; then the pool is opened afresh, rather than left to
    its reconnect back-off. The statement in flight when the server died fails as it must.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        restart: Callable[[], object] | None = None,
    ):
        self.url = url
        self.first_wait_s = FIRST_WAIT_S
        self.checkout_timeout_s = CHECKOUT_TIMEOUT_S
        self._sizes = (min_size, max_size)
        self._restart = restart
        self.pool = self._open_pool()
        with self.connection() as conn:
            migrate(conn)

    def _open_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.url,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            open=False,
            # A cheap round-trip on checkout: a restarted server costs a reconnect, not an error.
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": False},
            name="signals",
        )
        pool.open(wait=True, timeout=self.checkout_timeout_s)
        return pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(self.pool.connection(timeout=self.first_wait_s))
            except PoolTimeout:
                self._recover()
                conn = stack.enter_context(self.pool.connection(timeout=self.checkout_timeout_s))
            yield conn

    def _answers(self) -> str | None:
        """None when the server takes a new connection, else why not (its first line)."""
        try:
            psycopg.connect(self.url, connect_timeout=5).close()
        except psycopg.OperationalError as err:
            return (str(err).strip().splitlines() or [type(err).__name__])[0]
        return None

    def _recover(self) -> None:
        """After a checkout timed out: a busy pool is left alone; a dead server is restarted
        (embedded) or waited for, then the pool is opened afresh."""
        why = self._answers()
        if why is None:
            return
        if self._restart is not None:
            log.warning("PostgreSQL stopped answering (%s): restarting the embedded server", why)
            self._restart()
        else:
            deadline = time.monotonic() + self.checkout_timeout_s
            while why is not None and time.monotonic() < deadline:
                time.sleep(1.0)
                why = self._answers()
            if why is not None:
                raise DatabaseUnavailable(
                    f"PostgreSQL did not answer for {self.checkout_timeout_s:.0f} s ({why})"
                )
        stale, self.pool = self.pool, self._open_pool()
        stale.close(timeout=1.0)

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


def open_database(
    settings: DatabaseSettings | None = None,
    url: str | None = None,
    pgdata: Path | None = None,
) -> Database:
    """The process's pooled Database for `url` (or the settings' URL, or the embedded server
    in `pgdata` / the settings' pgdata, which it then restarts if it dies)."""
    if url is None and pgdata is None:
        if settings is None:
            raise ValueError("open_database needs a URL or the settings that name one")
        if settings.database_url:
            url = settings.database_url
        else:
            pgdata = settings.pgdata
    restart = None
    if url is None and pgdata is not None:
        embedded = Path(pgdata)
        url = embedded_url(embedded)

        def restart() -> object:
            return embedded_url(embedded)

    assert url is not None
    with _lock:
        db = _databases.get(url)
        if db is None or db.pool.closed:
            db = _databases[url] = Database(url, restart=restart)
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
