"""The fast version of trials/daemon_kills.py: the real dagster-daemon and code server (as
deployed, on an embedded PostgreSQL), two candles of one market, one daemon SIGKILL after
which the daemon restarts with the sensor's cursor set back to an older save.

The sensor then asks again for a candle that already ran; only Dagster's run-key
deduplication stands between that request and a second run (the trial skips no key itself).
`SIGNALS_TRIAL_BYPASS_DEDUP=1` runs the daemon with Dagster's run-key lookup disabled: the
test must then fail (how the check was shown to fail on purpose).
"""

from __future__ import annotations

import os

from trials.daemon_kills import run_trial


def test_a_killed_daemon_with_an_older_cursor_runs_each_key_once_by_dagsters_dedup() -> None:
    bypass = os.environ.get("SIGNALS_TRIAL_BYPASS_DEDUP") == "1"
    outcome = run_trial(
        candles=2,
        daemon_kills=1,
        worker_kills=0,
        cursor_restores=1,
        seed=3,
        markets=("BTCUSDT",),
        bypass_dedup=bypass,
    )
    details = outcome.details
    # The sensor asked again for the key that had run, so Dagster had something to refuse.
    assert details["run keys asked for again by the sensor (Dagster skipped them)"] >= 1, details
    assert details["daemon kills with an older cursor restored"] == 1, details
    # One run per key, found in Dagster's runs table; one signal per candle; parity.
    assert outcome.lost == [], outcome.lost
    assert details["dagster runs"] == 2 and details["successful runs"] == 2, details
    assert details["production signals"] == 2, details
    assert (outcome.cases, outcome.survived) == (1, 1)
    assert outcome.passed
