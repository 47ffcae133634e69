"""A Celery cluster on this machine for a test or a benchmark: Debian's `redis-server` on a
free port in a folder of its own, and `signals worker` processes, each in its own process
group so that stopping them stops their pool processes too."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "pipeline.cli", "worker"]
NO_DISK = ["--save", "", "--appendonly", "no"]  # a broker for one test: nothing persisted


class ClusterError(RuntimeError):
    """The broker or a worker did not come up; the message ends with their logs' tails."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"--- {path.name}: no log"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join([f"--- {path.name} (last {lines} lines)", *text[-lines:]])


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def stop_groups(processes: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM to each process group at once (Celery's warm shutdown: no task is running by
    then), SIGKILL to what is left after `grace_s`."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class LocalCluster:
    """A running broker and its workers."""

    root: Path
    broker: str
    env: dict[str, str]
    redis: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def tails(self, lines: int = 40) -> str:
        names = ["redis", *self.workers]
        return "\n".join(_tail(self.log(name), lines) for name in names)

    def start_worker(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        """`signals worker` from the repository root (so its code is the one under test)."""
        with self.log(name).open("w") as out:
            process = subprocess.Popen(
                [*WORKER, "--name", name, f"--concurrency={concurrency}"],
                cwd=REPO,
                env={**self.env, "SIGNALS_CELERY_BROKER": self.broker},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers[name] = process
        return process

    def wait_for_workers(self, timeout_s: float) -> list[str]:
        """Until every started worker answers a ping; `ClusterError` with the logs if one
        exits or the time runs out."""
        from pipeline.celery_app import BrokerUnavailable, check_broker

        deadline = time.monotonic() + timeout_s
        answered: list[str] = []
        while time.monotonic() < deadline:
            for name, process in self.workers.items():
                if process.poll() is not None:
                    raise ClusterError(
                        f"worker {name} exited with {process.returncode}\n{self.tails()}"
                    )
            try:
                answered = check_broker(self.broker, timeout_s=1.0)
            except BrokerUnavailable:
                answered = []
            if {a.split("@")[0] for a in answered} >= set(self.workers):
                return answered
            time.sleep(0.5)
        raise ClusterError(
            f"after {timeout_s:.0f} s only {answered or 'no worker'} answered\n{self.tails()}"
        )

    def pool_pids(self) -> dict[str, set[int]]:
        """Each worker's pool processes (the children of its main process): where a step
        executes."""
        pids: dict[str, set[int]] = {}
        for name, process in self.workers.items():
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            text = children.read_text() if children.exists() else ""
            pids[name] = {int(p) for p in text.split()}
        return pids

    def stop(self) -> None:
        stop_groups(list(self.workers.values()), grace_s=15.0)
        if self.redis is not None:
            stop_groups([self.redis], grace_s=5.0)


@contextmanager
def local_cluster(root: Path, env: Mapping[str, str]) -> Iterator[LocalCluster]:
    """redis-server on a free port with its files under `root`, no persistence; workers are
    started with `start_worker`. Everything is stopped on the way out."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ClusterError("redis-server is not installed (apt-get install redis-server)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = LocalCluster(root, f"redis://127.0.0.1:{port}/0", dict(env))
    with cluster.log("redis").open("w") as out:
        cluster.redis = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), *NO_DISK],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or cluster.redis.poll() is not None:
                raise ClusterError(f"redis-server did not answer on {port}\n{cluster.tails()}")
            time.sleep(0.1)
        yield cluster
    finally:
        cluster.stop()
