"""The malformed-candles trial, small: 60 generated batches, 30 through each path, every kind
of break on both, each one refused clearly or (the valid ones) stored exactly."""

from __future__ import annotations

from pathlib import Path

from trials.malformed import KINDS
from trials.malformed_candles import run_trial


def test_sixty_malformed_batches_are_all_survived(sample_dir: Path, database_url: str) -> None:
    outcome = run_trial(60, seed=0, data_dir=sample_dir, database_url=database_url)
    assert outcome.lost == []
    assert (outcome.cases, outcome.survived) == (60, 60)
    assert outcome.passed
    assert outcome.details["per path (tried/survived)"] == {"csv": "30/30", "http": "30/30"}
    per_kind = outcome.details["per kind (csv tried, http tried; all survived unless lost)"]
    assert sorted(per_kind) == sorted(KINDS)
    assert all(min(int(n) for n in tried.split(", ")) >= 1 for tried in per_kind.values())
    outcomes = outcome.details["outcome of the survivors (rule refused under, or stored)"]
    assert outcomes["(stored)"] >= 12  # the valid controls were stored, not refused
    assert sum(outcomes.values()) == 60
