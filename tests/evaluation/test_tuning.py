"""Studies in PostgreSQL: deterministic with a fixed sampler seed, and N workers finish the
budget exactly once."""

import uuid

import optuna
import pytest

from pipeline.evaluation.tuning import StudySpec, open_study, run_workers
from pipeline.store.studies import study_database_url
from tests.helpers.tuning import quadratic, slow_quadratic


@pytest.fixture()
def storage(pg_server) -> str:
    return study_database_url(pg_server, name=f"studies_{uuid.uuid4().hex[:10]}")


def _trials(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    return open_study(spec).get_trials(deepcopy=False)


def test_a_study_is_deterministic_with_a_fixed_sampler_seed(storage) -> None:
    first = StudySpec("a", storage, budget=15, seed=3)
    second = StudySpec("b", storage, budget=15, seed=3)
    assert run_workers(first, quadratic) == [15]
    assert run_workers(second, quadratic) == [15]
    a, b = _trials(first), _trials(second)
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.value for t in a] == [t.value for t in b]
    # Run again: the budget is already met, nothing more is run.
    assert run_workers(first, quadratic) == [0]
    other = StudySpec("c", storage, budget=15, seed=4)
    run_workers(other, quadratic)
    assert [t.params for t in _trials(other)] != [t.params for t in a]


@pytest.mark.parametrize(
    ("workers", "budget", "objective"), [(2, 10, slow_quadratic), (4, 60, quadratic)]
)
def test_worker_processes_finish_the_budget_once(storage, workers, budget, objective) -> None:
    """Slow trials overlap; fast ones race for the last slots (without the lock, 4 fast
    workers overshoot the budget)."""
    spec = StudySpec("shared", storage, budget=budget, seed=0)
    ran = run_workers(spec, objective, workers=workers)
    trials = _trials(spec)
    assert sum(ran) == len(trials) == budget  # no trial lost, none beyond the budget
    assert sorted(t.number for t in trials) == list(range(budget))  # none repeated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    with pytest.raises(ValueError, match="budget"):
        StudySpec("x", storage, budget=0)
