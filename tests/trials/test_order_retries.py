"""The order-retries trial, small: faults on order placement and two SIGKILLed step
processes (order row written, the order hanging at the exchange), nothing lost."""

from __future__ import annotations

from trials.order_retries import run_trial


def test_order_faults_and_kills_leave_the_book_equal_to_the_exchange(sample_dir, pg_server):
    outcome = run_trial(retries=6, kills=2, seed=1, data_dir=sample_dir, database_url=pg_server)
    kills = outcome.details["kills by point"]
    faults = sum(outcome.details["faults by kind"].values())
    assert outcome.lost == []
    assert sum(kills.values()) == 2 and faults >= 6
    assert outcome.cases == faults + 2
    assert outcome.survived == outcome.cases and outcome.passed
    # Each kill left an order row 'sent' with its order hanging at the exchange, and the
    # fresh process that ran the step again placed every order the signals called for once.
    assert outcome.details["steps run again (failed or killed)"] >= 2


def test_the_same_through_ccxts_bybit_client(sample_dir, pg_server):
    """The broker speaks Bybit v5 (orders by orderLinkId, acknowledged by ids only, looked up
    in /v5/order/realtime) to the same replay account: the same demands hold."""
    outcome = run_trial(
        retries=4, kills=1, seed=1, data_dir=sample_dir, database_url=pg_server, exchange="bybit"
    )
    assert outcome.lost == []
    assert sum(outcome.details["kills by point"].values()) == 1
    assert sum(outcome.details["faults by kind"].values()) >= 4
    assert outcome.command.endswith("--exchange bybit")
    assert outcome.survived == outcome.cases and outcome.passed
