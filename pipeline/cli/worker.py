"""`signals worker`: a Celery worker that executes the main job's steps (`signals run
--executor celery`), on this machine or any other that shares the database and the broker."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="a Celery worker for `signals run --executor celery` (broker SIGNALS_CELERY_BROKER, "
        "default redis://127.0.0.1:6379/0; same SIGNALS_* environment as the run)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="steps at once: pool processes (default 1)"
    )
    worker.add_argument(
        "--name", default=None, help="worker name, unique per broker (default: worker-PID)"
    )
    worker.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Set up the instance as `signals run` does, then hand this process to Celery.

    A task carries the run's instance configuration, whose storage URL is read from
    SIGNALS_DAGSTER_PG_URL, which this sets as `signals run` does; the step's resources read
    the SIGNALS_* environment of this process, so it must name the same database and home
    as the run's (the candle source alone travels in the run config)."""
    from pipeline import celery_app
    from pipeline.cli.run import local_instance

    settings = Settings.from_env()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster")))
    local_instance(dagster_home, settings)
    celery_app.check_broker(celery_app.broker_url(), need_workers=False)
    # The job's code (torch, pandas, the assets: seconds to import) is loaded here, before
    # the pool forks, so a pool process starts warm instead of paying it on its first step.
    import pipeline.scaleout  # noqa: F401

    name = args.name or f"worker-{os.getpid()}"
    celery_app.app.worker_main(
        [
            "worker",
            f"--concurrency={args.concurrency}",
            "--prefetch-multiplier=1",
            f"--loglevel={args.loglevel}",
            f"--hostname={name}@{socket.gethostname()}",
            f"--queues={celery_app.QUEUE}",
            "--without-mingle",
            "--without-gossip",
        ]
    )
    return 0
