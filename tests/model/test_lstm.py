"""The classifier's size, output shape and prediction helper."""

import numpy as np
import torch

from pipeline.model.lstm import LSTMClassifier, count_parameters, lstm_flops_per_sample
from pipeline.model.training import predict_proba


def test_parameter_count_is_about_25k() -> None:
    model = LSTMClassifier()
    n = count_parameters(model)
    assert 20_000 <= n <= 30_000
    assert n == 4 * 56 * (50 + 56) + 8 * 56 + 56 + 1 == 24_249
    assert 20_000 <= count_parameters(LSTMClassifier(hidden=36, layers=2)) <= 30_000


def test_logits_per_window_and_probabilities() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(n_features=5, hidden=8).train()
    x = np.random.default_rng(0).standard_normal((37, 12, 5)).astype(np.float32)
    assert model(torch.from_numpy(x)).shape == (37,)
    p = predict_proba(model, x, batch=10)
    assert p.shape == (37,) and ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(p, predict_proba(model, torch.from_numpy(x), batch=37), rtol=1e-5)
    assert model.training  # the helper restores the mode it found


def test_flops_formula() -> None:
    flops = lstm_flops_per_sample(50, 56, 1, 32)
    assert flops["forward"] == 2 * (32 * 4 * 56 * 106 + 56)
    assert flops["train"] == 3 * flops["forward"]
    two = lstm_flops_per_sample(50, 36, 2, 32)["forward"]
    assert two == 2 * (32 * (4 * 36 * 86 + 4 * 36 * 72) + 36)
