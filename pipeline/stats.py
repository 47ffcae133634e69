"""Honest uncertainty: intervals for figures over time, where neighbouring rows are not
independent, and the deflated Sharpe ratio, which discounts a Sharpe for the trials behind it.

scipy is imported inside the functions that use it: this module is imported by the code
location, whose every run process should not pay for scipy.stats (about a second)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def day_block_bootstrap(
    timestamps: pd.Series | np.ndarray,
    values: np.ndarray,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Interval of the mean of `values`, resampling whole UTC days.

    Rows of one day (and, pooled, of several markets at one time) move together; resampling
    rows one by one would understate the uncertainty.
    """
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return float("nan"), float("nan")
    days = pd.to_datetime(pd.Series(timestamps), utc=True).dt.floor("D").to_numpy()
    _, day_index = np.unique(days, return_inverse=True)
    sums = np.bincount(day_index, weights=values)
    counts = np.bincount(day_index).astype("float64")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(draws, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: `successes` of `n` (NaN, NaN with no trials).

    Unlike the normal interval it stays inside [0, 1] and is not degenerate at 0 or n
    successes. It treats the n trials as independent: where they overlap in time (labels
    reading the same candles), the truth is wider.
    """
    from scipy import stats as scipy_stats

    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return float("nan"), float("nan")
    z = float(scipy_stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


EULER_GAMMA = 0.5772156649015329  # the Euler–Mascheroni constant


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """E[max] of `trials` Sharpe ratios with variance `sharpe_variance` and true Sharpe 0.

    Bailey & López de Prado (2014), eq. 8 (false strategy theorem): sqrt(V) · ((1 − γ) ·
    Φ⁻¹(1 − 1/N) + γ · Φ⁻¹(1 − 1/(N·e))). One trial selects nothing: 0.
    """
    from scipy import stats as scipy_stats

    if trials < 1:
        raise ValueError("trials must be at least 1")
    if trials == 1:
        return 0.0
    quantiles = (1 - EULER_GAMMA) * scipy_stats.norm.ppf(
        1 - 1 / trials
    ) + EULER_GAMMA * scipy_stats.norm.ppf(1 - 1 / (trials * math.e))
    return float(math.sqrt(sharpe_variance) * quantiles)


def trials_sharpe_variance(sharpes: list[float], periods_per_year: float = 1.0) -> float | None:
    """Variance (ddof 1) of the trials' Sharpe ratios, per observation; None under two trials.

    Sharpe ratios annualised with `periods_per_year` periods come back per period (an
    annualised Sharpe is sqrt(periods) times the per-period one, its variance `periods` times).
    """
    if len(sharpes) < 2:
        return None
    return float(np.var(np.asarray(sharpes, dtype="float64"), ddof=1)) / periods_per_year


def deflated_sharpe(
    sharpe: float,
    trials: int,
    observations: int,
    skew: float,
    kurtosis: float,
    sharpe_variance: float | None = None,
) -> dict[str, float | int | str]:
    """The deflated Sharpe ratio (Bailey & López de Prado, 2014): the probability that the
    true Sharpe exceeds what the best of `trials` unskilled tries would show by luck.

    Everything is per observation, not annualised: `sharpe` is mean / std of the per-period
    returns, `sharpe_variance` the variance of the trials' per-period Sharpe ratios (divide
    an annualised variance by the periods per year), `kurtosis` is Pearson's (3 for a
    normal law, not the excess). With `sharpe_variance` None (fewer than two trials with a
    Sharpe to take a variance of), the variance of the Sharpe estimator itself stands in:
    (1 − skew·SR + (kurtosis − 1)/4 · SR²) / (T − 1). With one trial the benchmark is 0 and
    the result is the probabilistic Sharpe ratio PSR(0).

    Returns the Sharpe, the benchmark `expected_max_sharpe` (SR*), the z statistic, the
    deflated Sharpe `dsr` (a probability), and the inputs used.
    """
    from scipy import stats as scipy_stats

    if observations < 2:
        raise ValueError("the deflated Sharpe needs at least 2 observations")
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not spread > 0:
        raise ValueError(
            f"1 − skew·SR + (kurtosis − 1)/4·SR² = {spread:.3g} is not positive: the skew and "
            "kurtosis do not describe a distribution with this Sharpe"
        )
    source = "trials"
    if sharpe_variance is None:
        sharpe_variance, source = spread / (observations - 1), "estimator"
    if sharpe_variance < 0:
        raise ValueError("sharpe_variance cannot be negative")
    benchmark = expected_max_sharpe(trials, sharpe_variance)
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread)
    return {
        "sharpe": float(sharpe),
        "expected_max_sharpe": benchmark,
        "z": float(z),
        "dsr": float(scipy_stats.norm.cdf(z)),
        "trials": int(trials),
        "observations": int(observations),
        "skew": float(skew),
        "kurtosis": float(kurtosis),
        "sharpe_variance": float(sharpe_variance),
        "variance_source": source,
    }


def deflated_sharpe_from_returns(
    returns: np.ndarray, trials: int, sharpe_variance: float | None = None
) -> dict[str, float | int | str]:
    """`deflated_sharpe` of a series of per-period returns (NaN dropped).

    The Sharpe is mean / sample standard deviation (ddof 1) per period; skew and Pearson
    kurtosis are the sample moments (scipy, biased). `sharpe_variance` is per period too.
    """
    from scipy import stats as scipy_stats

    values = np.asarray(returns, dtype="float64")
    values = values[~np.isnan(values)]
    if values.size < 2:
        raise ValueError("the deflated Sharpe needs at least 2 returns")
    std = float(values.std(ddof=1))
    if std == 0:
        raise ValueError("returns with no variation have no Sharpe ratio")
    return deflated_sharpe(
        float(values.mean()) / std,
        trials,
        int(values.size),
        float(scipy_stats.skew(values)),
        float(scipy_stats.kurtosis(values, fisher=False)),
        sharpe_variance,
    )
