"""A real `dagster dev` (webserver + daemon) on a temporary home, for the browser tests.

It runs as a subprocess in a process group of its own, so that stopping it also stops the
code server, the daemon and any run worker it started; its output goes to a log file whose
tail is what a failed start reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCATION = "futures_signals"  # workspace.yaml's location_name

_LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; a race with another process is possible
    but harmless here: dagster dev would fail to bind and the start would report it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _interruptible() -> None:
    """Ctrl-C must reach it: a process started from a background job inherits SIGINT
    ignored, and dagster dev maps SIGTERM to whatever SIGINT does, so it would ignore both."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class DagsterDevError(RuntimeError):
    """dagster dev did not come up; the message carries its log's tail."""


class DagsterDev:
    """`dagster dev -w workspace.yaml` from the repository root with `env` added to ours."""

    def __init__(self, home: Path, env: dict[str, str], port: int | None = None):
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "dagster-dev.log"
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.process: subprocess.Popen | None = None

    def start(self) -> DagsterDev:
        command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
        command += ["-h", "127.0.0.1", "-p", str(self.port)]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches every child
            preexec_fn=_interruptible,
        )
        log.close()
        return self

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, why: str) -> DagsterDevError:
        return DagsterDevError(
            f"dagster dev on {self.url} {why}; its log ({self.log_path}) ends:\n{self.log_tail()}"
        )

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 10) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["data"]

    def wait_ready(self, timeout: float = 150) -> None:
        """Until /server_info answers and the code location has loaded (the pages need the
        Definitions, which import torch: seconds on a small machine). Bounded; a process
        that exits or a location that fails to load is reported at once with the log."""
        deadline = time.monotonic() + timeout
        served = False
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self._fail(f"exited with code {self.process.returncode}")
            try:
                if not served:
                    with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as reply:
                        served = reply.status == 200
                if served and self._location_loaded():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        what = "loaded no code location" if served else "did not answer /server_info"
        raise self._fail(f"{what} within {timeout:.0f} s")

    def _location_loaded(self) -> bool:
        workspace = self.graphql(_LOCATION_STATUS)["workspaceOrError"]
        for entry in workspace.get("locationEntries", []):
            if entry["name"] != LOCATION or entry["loadStatus"] != "LOADED":
                continue
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise self._fail(f"could not load {LOCATION}: {loaded['message']}")
            return True
        return False

    def stop(self, timeout: float = 30) -> None:
        """SIGINT to the process group, as Ctrl-C in its terminal would (dagster dev stops
        its webserver, daemon and code server), then SIGKILL to whatever is left of the
        group after `timeout` (a run worker that outlived its parent, say)."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group is led by dagster dev
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
