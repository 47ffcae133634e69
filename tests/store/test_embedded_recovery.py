"""The embedded server killed mid-work comes back on the next command, with its data.

A SIGKILLed postmaster lingers as a zombie (nobody reaps it) that `pid_exists` counts as
running, beside a stale socket lock: before the fix the next process got "connection
refused" until the zombie was gone (issue 13's "pool initialization incomplete")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.store.embedded import embedded_url, postmaster_alive, stop_embedded

NEXT_COMMAND = """
import sys
from pathlib import Path
import psycopg
from pipeline.store.embedded import embedded_url
with psycopg.connect(embedded_url(Path(sys.argv[1])), connect_timeout=10) as conn:
    print(conn.execute("SELECT count(*) FROM kept").fetchone()[0])
"""


@pytest.fixture()
def own_server():
    """A server of the test's own (the session's is shared): stopped afterwards."""
    pgdata = Path(tempfile.mkdtemp(prefix="signals-crash-")) / "pg"
    yield pgdata
    stop_embedded(pgdata)


def test_a_killed_server_is_back_for_the_next_command_with_its_data(own_server: Path) -> None:
    url = embedded_url(own_server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 1000)")
    errors: list[str] = []

    def busy() -> None:  # backends at work when the postmaster dies
        try:
            with psycopg.connect(url) as conn:
                conn.execute("INSERT INTO kept SELECT 0 FROM pg_sleep(30)")
        except psycopg.Error as err:
            errors.append(type(err).__name__)

    workers = [threading.Thread(target=busy) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    pid = int((own_server / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    for worker in workers:
        worker.join(30)
    assert len(errors) == 3  # the work in flight failed (and was not committed)
    # A SIGKILLed process still reads as running while the kernel tears it down (its memory
    # first, under load for a moment): wait until it is dead (a zombie, or gone).
    for _ in range(100):
        if not postmaster_alive(own_server):
            break
        time.sleep(0.1)
    assert not postmaster_alive(own_server)

    for attempt in range(2):  # the first command after the crash, and the one after it
        done = subprocess.run(
            [sys.executable, "-c", NEXT_COMMAND, str(own_server)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (attempt, done.stderr[-2000:])
        assert done.stdout.strip() == "1000"  # committed rows survived; in-flight ones did not
    assert postmaster_alive(own_server)


def _kill(pgdata: Path) -> None:
    """SIGKILL the postmaster and wait until its backends have noticed and exited."""
    import psutil

    os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
    for _ in range(100):
        backends = []
        for proc in psutil.process_iter(["name"]):
            try:
                if (
                    proc.info["name"] == "postgres"
                    and Path(proc.cwd()) == pgdata.resolve()
                    and proc.status() != psutil.STATUS_ZOMBIE
                ):
                    backends.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not backends:
            return
        time.sleep(0.1)
    raise AssertionError(f"backends still running: {backends}")


def test_a_process_whose_embedded_server_dies_brings_it_back_at_its_next_checkout(
    own_server: Path,
) -> None:
    """A long-lived process (the daemon's sensor, an in-process job) outlives a crash: its
    next checkout restarts the server, and the committed data is there."""
    from pipeline.store.database import open_database

    db = open_database(pgdata=own_server)
    db.first_wait_s = 1.0
    with db.connection() as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 10)")
        conn.commit()
    _kill(own_server)
    with db.connection() as conn:  # the pool's dead connection is discarded, not handed out
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 10
    assert postmaster_alive(own_server)
    db.close()


def test_an_external_server_that_stays_down_is_a_clear_error_within_the_bound(
    own_server: Path,
) -> None:
    from pipeline.store.database import Database, DatabaseUnavailable

    db = Database(embedded_url(own_server))  # by URL: not ours to restart
    db.first_wait_s, db.checkout_timeout_s = 0.5, 2.0
    _kill(own_server)
    with pytest.raises(DatabaseUnavailable, match="did not answer for 2 s"), db.connection():
        pass
    assert not postmaster_alive(own_server)  # nobody restarted it
    db.close()
