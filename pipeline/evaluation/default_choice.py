"""The rule that names the shipped default strategy, written before any verdict runs.

Candidates are the scorers (the LSTM, gradient boosting, logistic regression, the blend of
the LSTM and boosting) at each decision timeframe tried, each with the portfolio operating
point its folds chose. The rule reads only validation's judging halves (the halves that chose
nothing): per candidate, the median over folds of the judging half's net Sharpe (a liquidated
or undefined half counts as −∞); the highest median wins; ties go to the lower median
turnover. No figure of a test slice is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RULE = (
    "highest median over folds of validation's judging-half net Sharpe (liquidated or "
    "undefined: −∞), ties to the lower median turnover; test slices are not read"
)


def _value(figures: Mapping[str, Any], key: str, missing: float) -> float:
    value = figures.get(key)
    if value is None or figures.get("liquidated"):
        return missing
    value = float(value)
    return value if math.isfinite(value) else missing


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return -math.inf
    middle = n // 2
    if n % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    if math.isinf(low) or math.isinf(high):
        return low if math.isinf(low) else high
    return (low + high) / 2


def choose_default(
    judged: Mapping[str, Sequence[Mapping[str, Any]]],
) -> tuple[str, dict[str, Any]]:
    """The winning candidate's name, and the rule with every candidate's medians."""
    if not judged:
        raise ValueError("no candidates to choose a default from")
    medians = {
        name: {
            "median_sharpe": _median([_value(f, "sharpe", -math.inf) for f in folds]),
            "median_turnover": _median([_value(f, "turnover_per_year", math.inf) for f in folds]),
            "folds": len(folds),
        }
        for name, folds in judged.items()
    }
    winner = max(
        medians, key=lambda n: (medians[n]["median_sharpe"], -medians[n]["median_turnover"])
    )
    return winner, {"rule": RULE, "candidates": medians}
