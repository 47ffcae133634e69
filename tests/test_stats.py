"""The deflated Sharpe ratio against the paper's worked example and its defining edge cases;
the Wilson interval against a worked value."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from pipeline.stats import (
    deflated_sharpe,
    deflated_sharpe_from_returns,
    expected_max_sharpe,
    trials_sharpe_variance,
    wilson_interval,
)

DAYS = 250  # the paper annualises daily figures with 250 days


def by_hand(sr: float, n: int, t: int, skew: float, kurt: float, v: float) -> float:
    """The paper's formulas with the standard library's normal law (not scipy's)."""
    gamma = 0.5772156649015329
    z = NormalDist().inv_cdf
    sr0 = math.sqrt(v) * ((1 - gamma) * z(1 - 1 / n) + gamma * z(1 - 1 / (n * math.e)))
    stat = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return NormalDist().cdf(stat)


def test_the_papers_numerical_example() -> None:
    """Bailey & López de Prado (2014), section 5: annualised SR 2.5 over 5 years of daily
    returns (T = 1250), N = 100 trials with annualised variance 0.5, skew −3, kurtosis 10:
    SR* ≈ 0.1132 per day and DSR ≈ 0.9004. Both Sharpe and variance are converted to days."""
    sr = 2.5 / math.sqrt(DAYS)
    out = deflated_sharpe(sr, 100, 1250, -3.0, 10.0, sharpe_variance=0.5 / DAYS)
    assert out["expected_max_sharpe"] == pytest.approx(0.1132, abs=5e-5)
    assert out["dsr"] == pytest.approx(0.9004, abs=5e-5)
    assert out["dsr"] == pytest.approx(by_hand(sr, 100, 1250, -3.0, 10.0, 0.5 / DAYS), abs=1e-12)
    assert out["variance_source"] == "trials"


def test_one_trial_is_the_probabilistic_sharpe_against_zero() -> None:
    sr, t, skew, kurt = 0.05, 500, -0.5, 6.0
    out = deflated_sharpe(sr, 1, t, skew, kurt, sharpe_variance=0.01)
    assert out["expected_max_sharpe"] == 0.0
    psr0 = NormalDist().cdf(sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + 1.25 * sr**2))
    assert out["dsr"] == pytest.approx(psr0, abs=1e-12)


def test_more_trials_never_raise_it() -> None:
    values = [deflated_sharpe(0.08, n, 1000, 0.0, 3.0, 0.001)["dsr"] for n in range(1, 2001)]
    assert (np.diff(values) <= 0).all()
    assert values[0] > 0.99 > values[-1]
    benchmarks = [expected_max_sharpe(n, 1.0) for n in (1, 2, 10, 100, 1000)]
    assert benchmarks == sorted(benchmarks) and benchmarks[0] == 0.0


def test_without_a_variance_across_trials_the_estimators_own_stands_in() -> None:
    sr, t, skew, kurt = 0.1, 401, 0.2, 4.0
    v = (1 - skew * sr + (kurt - 1) / 4 * sr**2) / (t - 1)
    out = deflated_sharpe(sr, 10, t, skew, kurt)
    assert out["variance_source"] == "estimator"
    assert out["sharpe_variance"] == pytest.approx(v, rel=1e-15)
    assert out["dsr"] == pytest.approx(by_hand(sr, 10, t, skew, kurt, v), abs=1e-12)


def test_from_returns_uses_the_per_period_moments() -> None:
    returns = np.array([0.01, -0.02, 0.03, 0.0, 0.015, -0.005, 0.02, np.nan])
    clean = returns[:-1]
    mean, sd = clean.mean(), clean.std(ddof=1)
    centred = clean - mean
    m2 = (centred**2).mean()
    skew = (centred**3).mean() / m2**1.5
    kurt = (centred**4).mean() / m2**2
    out = deflated_sharpe_from_returns(returns, 5, sharpe_variance=0.02)
    assert out["observations"] == 7
    assert out["sharpe"] == pytest.approx(mean / sd, rel=1e-12)
    assert out["skew"] == pytest.approx(skew, rel=1e-12)
    assert out["kurtosis"] == pytest.approx(kurt, rel=1e-12)
    assert out["dsr"] == pytest.approx(by_hand(mean / sd, 5, 7, skew, kurt, 0.02), abs=1e-12)


def test_variance_across_trials_comes_back_per_period() -> None:
    assert trials_sharpe_variance([1.0]) is None
    # annualised Sharpes 1, 2, 3: variance 1 a year, 1/250 a day
    assert trials_sharpe_variance([1.0, 2.0, 3.0], periods_per_year=DAYS) == pytest.approx(1 / DAYS)


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        deflated_sharpe(0.1, 0, 100, 0.0, 3.0)
    with pytest.raises(ValueError, match="2 observations"):
        deflated_sharpe(0.1, 1, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="not positive"):
        deflated_sharpe(1.0, 1, 100, 3.0, 1.0)


def test_wilson_interval_worked_value_and_edges() -> None:
    # 8 of 10 at 95 %: (0.4902, 0.9433), by hand from the score formula.
    low, high = wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson_interval(0, 20)[0] == 0.0 < wilson_interval(0, 20)[1] < 0.2
    assert wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    narrow, wide = wilson_interval(550, 1000), wilson_interval(55, 100)
    assert wide[0] < narrow[0] < 0.55 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
