"""The exchange-faults trial, small: about twenty faults of every kind over HTTP across
ingest, the live job's refresh and order placement, nothing lost or duplicated."""

from __future__ import annotations

from pipeline.replay.faults import FAULT_KINDS
from trials.exchange_faults import run_trial


def test_faults_of_every_kind_on_three_paths_lose_nothing(sample_dir, pg_server) -> None:
    outcome = run_trial(faults=20, seed=2, data_dir=sample_dir, database_url=pg_server)
    assert outcome.lost == []
    by_path = outcome.details["faults by path"]
    assert by_path["ingest"] >= 8 and by_path["live"] >= 6 and by_path["orders"] >= 6
    assert outcome.cases == sum(by_path.values()) >= 20
    assert set(outcome.details["faults by kind"]) == set(FAULT_KINDS)
    assert outcome.survived == outcome.cases and outcome.passed
    # On every path a step ran past the retry bound, failed clearly and was run again.
    reruns = outcome.details["steps run again after the bound"]
    assert all(reruns[path] >= 1 for path in ("ingest", "live", "orders")), reruns


def test_the_same_through_ccxts_bybit_client(sample_dir, pg_server) -> None:
    """Every client speaks Bybit v5 to the replay (its rate limit and system error answers in
    Bybit's words): still nothing lost or duplicated on any path."""
    outcome = run_trial(
        faults=20, seed=2, data_dir=sample_dir, database_url=pg_server, exchange="bybit"
    )
    assert outcome.lost == []
    by_path = outcome.details["faults by path"]
    assert by_path["ingest"] >= 8 and by_path["live"] >= 6 and by_path["orders"] >= 6
    assert outcome.cases == sum(by_path.values()) >= 20
    assert set(outcome.details["faults by kind"]) == set(FAULT_KINDS)
    reruns = outcome.details["steps run again after the bound"]
    assert all(reruns[path] >= 1 for path in ("ingest", "live", "orders")), reruns
    assert outcome.survived == outcome.cases and outcome.passed
