"""The secrets trial, small: fake keys through the live path with the ccxt broker (trading, the
kill switch, the daily loss limit, `signals reconcile`), then every output searched."""

from __future__ import annotations

from trials.secrets import run_trial


def test_the_keys_appear_in_no_output_and_the_risk_limits_reach_the_live_job(sample_dir) -> None:
    outcome = run_trial(candles=8, seed=1, data_dir=sample_dir)
    assert outcome.lost == []  # no leak, and every risk check of the live job held
    assert outcome.details["signed_requests_with_the_keys"] > 0
    assert outcome.details["files_searched"] > 100  # Dagster's home and the server's files
    assert outcome.details["dagster_events"] > 0
    phases = outcome.details["phases"]
    assert phases["kill switch on"]["positions_after"] == {}
    assert phases["loss limit"]["positions_after"] == {}
    assert "refused the API credentials" in outcome.details["reconcile_wrong_secret"]
    assert outcome.passed
