"""Hyperparameter studies shared through PostgreSQL: one study, N worker processes, an exact
trial budget (issue 11's search engine; what the trials fit is the objective handed in).

Each worker opens the same Optuna study (TPE sampler, median pruner) in the studies'
database (`pipeline.store.studies`) and runs trials until the study holds `budget` of them.
Counting the trials and creating the next happen under one advisory lock, so the budget is
finished once: no trial is lost or run twice, however many workers or machines join.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.store.studies import budget_lock, sqlalchemy_url

if TYPE_CHECKING:  # optuna (and SQLAlchemy under it) loads when a study opens
    import optuna

Objective = Callable[["optuna.Trial"], float]


@dataclass(frozen=True)
class StudySpec:
    name: str
    storage_url: str  # libpq URL of the studies' database (`study_database_url`)
    budget: int  # trials the study holds when every worker stops
    seed: int = 0  # the sampler's seed for worker 0; worker i samples with seed + i

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"a study needs a budget of at least one trial, got {self.budget}")


def open_study(spec: StudySpec) -> optuna.Study:
    """The study named `spec.name`, created on first use; maximises the objective."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        sqlalchemy_url(spec.storage_url), engine_kwargs={"pool_pre_ping": True}
    )
    return optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.MedianPruner(),
        direction="maximize",
        load_if_exists=True,
    )


def work(spec: StudySpec, objective: Objective, threads: int | None = None) -> int:
    """Run trials until the study holds `spec.budget`; return how many this worker ran
    (with `threads`, torch's CPU threads in this process)."""
    import optuna

    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(spec)
    ran = 0
    while True:
        with budget_lock(spec.storage_url):
            if len(study.get_trials(deepcopy=False)) >= spec.budget:
                return ran
            trial = study.ask()
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        ran += 1


def worker_threads(workers: int) -> int:
    """Torch threads per worker: the cores shared out. Two workers each running torch's
    default (every core) were 0.59× as fast as one worker on 2 cores (bench/tuning.py)."""
    return max(1, (os.cpu_count() or 1) // workers)


def run_workers(
    spec: StudySpec, objective: Objective, workers: int = 1, threads: int | None = None
) -> list[int]:
    """`workers` processes on one study (the objective must be importable: spawned workers
    pickle it); returns the trials each ran. Several workers share the cores out
    (`worker_threads`) unless `threads` says otherwise."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    open_study(spec)  # created once here, so workers only ever load it
    if workers == 1:
        return [work(spec, objective, threads)]
    threads = threads or worker_threads(workers)
    specs = [replace(spec, seed=spec.seed + i) for i in range(workers)]
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        ran = pool.starmap(work, [(s, objective, threads) for s in specs])
        # Workers leave on their own once the work is done: `terminate` (what `with Pool`
        # does) needs SIGTERM, which a process started in the background may ignore.
        pool.close()
        pool.join()
        return ran
    finally:
        pool.terminate()
