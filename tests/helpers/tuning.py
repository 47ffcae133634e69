"""Objectives for study tests: importable, so spawned workers can unpickle them."""

import time

import optuna


def quadratic(trial: optuna.Trial) -> float:
    """A smooth peak at x = 0.3, y = 2: cheap, and its best parameters are known."""
    x = trial.suggest_float("x", -1.0, 1.0)
    y = trial.suggest_int("y", 0, 5)
    return -((x - 0.3) ** 2) - 0.1 * (y - 2) ** 2


def slow_quadratic(trial: optuna.Trial) -> float:
    """The same, slow enough that two workers overlap."""
    time.sleep(0.2)
    return quadratic(trial)
