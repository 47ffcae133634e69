"""The Celery side of scale-out: the broker, the executor's configuration and the worker's app.

`signals run --executor celery` submits each step of the main job to a Celery queue through
`dagster-celery`'s executor; `signals worker` (or `celery -A pipeline.celery_app worker`) runs
them. Both sides build their Celery app from the one `executor_config` below, so the broker,
the result backend, the queue and the prefetch setting cannot drift apart.

This module is light on purpose (no Definitions, no torch): it is what a worker's main process
imports before it forks its pool; the job's code is loaded in the pool's process by the first
task that needs it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import time
from typing import Any

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
ENV_BROKER = "SIGNALS_CELERY_BROKER"
QUEUE = "dagster"  # dagster-celery's default queue: its app routes execute_plan there


class BrokerUnavailable(RuntimeError):
    """The broker does not answer, or no worker listens on it."""


def broker_url(environ: dict[str, str] | None = None) -> str:
    """`SIGNALS_CELERY_BROKER`, else a Redis on this machine."""
    env = os.environ if environ is None else environ
    return env.get(ENV_BROKER) or DEFAULT_BROKER


def executor_config(broker: str) -> dict[str, Any]:
    """The `execution.config` of a run on dagster-celery's executor.

    The result backend is the broker itself: dagster-celery's default (`rpc://`) returns
    results over AMQP reply queues, which a Redis broker does not have. One task at a time per
    pool process (`worker_prefetch_multiplier` 1): a step lasts seconds to minutes, so a
    prefetched task would wait behind a long one while another worker idles.
    """
    return {
        "broker": broker,
        "backend": broker,
        "config_source": {"worker_prefetch_multiplier": 1},
    }


def make_celery_app(broker: str) -> Any:
    """dagster-celery's app (its queue, routes and priorities) on `broker`, with its task that
    executes one step of a run registered."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    celery = make_app(CeleryExecutor.for_cli(**executor_config(broker)).app_args())
    create_task(celery)
    return celery


def check_broker(
    broker: str, timeout_s: float = 3.0, need_workers: bool = True, wait_s: float = 0.0
) -> list[str]:
    """The names of the workers that answer on `broker`, asked until one does or `wait_s`
    has passed (workers started together with the run are still importing their code).

    A `BrokerUnavailable` says what to do when the broker does not answer, or (with
    `need_workers`) when no worker does: a run submitted then would wait for ever.
    """
    from celery import Celery
    from kombu import Connection

    try:
        with Connection(broker, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as err:
        raise BrokerUnavailable(
            f"the Celery broker at {broker} does not answer ({type(err).__name__}: {err}); "
            f"start it (e.g. `redis-server --port 6379`) or set {ENV_BROKER}"
        ) from err
    if not need_workers:
        return []
    # A bare app: a ping travels on the broker's control exchange, no task is involved.
    control = Celery(broker=broker).control
    deadline = time.monotonic() + wait_s
    while True:
        replies = control.inspect(timeout=min(timeout_s, 1.0)).ping() or {}
        if replies:
            return sorted(replies)
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(
                f"no Celery worker answered on {broker} within {wait_s:.0f} s: start one or "
                "more with `signals worker` (same SIGNALS_* environment as this command)"
            )


def run_processes() -> multiprocessing.context.ForkServerContext:
    """Where `signals run --executor celery` gets a process per run it orchestrates: a fork
    server that has imported the job's code once, started on the first call (in the
    background: it imports while the caller goes on).

    Not threads: Dagster reconfigures Python's logging when a run starts
    (`logging.config.dictConfig`), which deadlocks against another run's thread that is
    emitting an event at that moment. Not forks of the caller: a fork inherits its threads'
    locks and its open broker connections (kombu closes those in the child after a fork and
    can hang there). The server forks clean children instead, with the environment it was
    started with (SIGNALS_*, DAGSTER_HOME, SIGNALS_DAGSTER_PG_URL: set them first).
    """
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.scaleout"])
    forkserver.ensure_running()
    return context


def __getattr__(name: str) -> Any:
    """`app`: what `celery -A pipeline.celery_app worker` loads, on the configured broker.
    Built on first use and kept: Celery shares a task among all apps of a process, so a
    second app would register `execute_plan` twice."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global _app
    if _app is None:
        _app = make_celery_app(broker_url())
    return _app


_app: Any = None
