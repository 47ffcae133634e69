"""The main job on Celery workers: its named jobs, reconstructable in another process.

`dagster-celery` sends each step to a worker as a pointer to its job (a module and a function
that a worker imports and calls), not as a pickled object, so the jobs here come from a
module-level function: `celery_definitions` builds the main job's named jobs with the celery
executor and resources configured from the worker's own environment (the same SIGNALS_*
settings as the submitting process: the database, the home, the markets).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster_celery import celery_executor

from pipeline.celery_app import broker_url, executor_config
from pipeline.definitions import ASSETS, build_resources
from pipeline.jobs import MAIN_JOB_SEQUENCE
from pipeline.settings import Settings


def celery_definitions() -> dg.Definitions:
    """The main job's named jobs on dagster-celery's executor, resources from the environment.

    Called again in every process that loads the jobs (`signals run`, its run processes, each
    worker): what it returns there must be the same jobs as here, so it reads nothing but the
    environment. The executor's broker is SIGNALS_CELERY_BROKER's, fixed here rather than in
    the run config: every process reads the same variable, and a run made on Celery keeps a
    run config that the code location's own jobs accept, so the UI can re-execute it.
    """
    return dg.Definitions(
        assets=ASSETS,
        jobs=MAIN_JOB_SEQUENCE,
        resources=build_resources(Settings.from_env()),
        executor=celery_executor.configured(executor_config(broker_url())),
    )


def reconstructable_job(name: str, working_directory: str | None = None) -> ReconstructableJob:
    """A pointer to the named job of `celery_definitions` that a worker can load: this
    module's function, imported from `working_directory` (default: here) if the package is
    not installed there."""
    repository = ReconstructableRepository.for_module(
        __name__, celery_definitions.__name__, working_directory or os.getcwd()
    )
    return repository.get_reconstructable_job(name)


def celery_run_config(settings: Settings | None = None) -> dict[str, Any]:
    """What a run on the workers adds to its run config: with `settings`, the candle source's
    configuration (no secret is in it), so that the replay exchange `signals run` starts on a
    free port is reached by workers that were started before it, with the URL chosen here."""
    if settings is None:
        return {}
    source = build_resources(settings)["candle_source"]
    fields = source.model_dump(exclude_none=True)  # type: ignore[attr-defined]
    return {"resources": {"candle_source": {"config": fields}}}
