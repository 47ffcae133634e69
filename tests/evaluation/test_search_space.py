"""The search space: parameter counts as the model has them, the ~25k class kept, and a
trial's point turned into the configs it sets."""

import optuna
import pytest

from pipeline.evaluation.operating_choice import OperatingChoice
from pipeline.evaluation.search_space import (
    SearchSpace,
    TrialParams,
    hidden_choices,
    lstm_parameters,
    suggest,
)
from pipeline.features.labels import LabelRule
from pipeline.model.lstm import LSTMClassifier, count_parameters
from pipeline.model.training import TrainConfig


@pytest.mark.parametrize(("features", "hidden", "layers"), [(50, 56, 1), (50, 40, 1), (20, 16, 2)])
def test_parameter_count_equals_the_models(features, hidden, layers) -> None:
    model = LSTMClassifier(features, hidden, layers)
    assert lstm_parameters(features, hidden, layers) == count_parameters(model)


def test_hidden_sizes_stay_in_the_parameter_class() -> None:
    space = SearchSpace()
    sizes = hidden_choices(space, 50)
    assert sizes[0] == space.hidden[0] and 56 in sizes
    assert all(lstm_parameters(50, h) <= space.max_parameters for h in sizes)
    # More features, fewer hidden units fit; none at all is a clear error.
    assert max(hidden_choices(space, 120)) < max(sizes)
    with pytest.raises(ValueError, match="parameters"):
        hidden_choices(SearchSpace(max_parameters=1_000), 50)


def test_a_trials_point_sets_only_what_the_space_searches() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    trial = study.ask()
    params = suggest(trial, SearchSpace(), 50)
    assert trial.user_attrs["n_parameters"] == lstm_parameters(50, params.hidden)
    base = TrainConfig(max_epochs=7, patience=2, seed=3)
    train = params.train(base)
    assert (train.window, train.hidden, train.lr) == (params.window, params.hidden, params.lr)
    assert (train.max_epochs, train.patience, train.seed) == (7, 2, 3)
    rule = params.label(LabelRule(margin=0.001))
    assert (rule.horizon, rule.barrier_k, rule.margin) == (params.horizon, params.barrier_k, 0.001)
    choice = params.operating(OperatingChoice(fixed_threshold=0.65))
    assert choice.coverages == (params.coverage,) and choice.fixed_threshold is None
    assert TrialParams.from_json(params.to_json()) == params
