"""lstm_model, backtest_report and production_model through Dagster, on a small slice."""

import dataclasses

import dagster as dg
import pytest

from assets.modeling import GAP_CHECK, MAJORITY_CHECK, backtest_report
from pipeline.partitions import FACTOR_BASKET, market_partitions
from pipeline.store import models as model_store
from pipeline.store.database import Database

REFUSING = {"min_trades": 1_000_000}
PERMISSIVE = {
    "min_total_return": -1.0,
    "min_profit_factor": 0.0,
    "min_win_rate": 0.0,
    "max_drawdown": 1.0,
    "min_trades": 0,
    "require_beats_majority": False,
    "max_gap": 1.0,
}


@pytest.fixture(scope="module")
def modeled(chain_run):
    chain_run.run("lstm_model", None, chain_run.MODEL)
    _store_a_newer_candidate(chain_run)
    for market in market_partitions.get_partition_keys():
        chain_run.run("backtest_report", market)
    return chain_run


def _store_a_newer_candidate(run) -> int:
    """A copy of the trained candidate under a newer id: the downstream assets must still
    judge the model lstm_model produced, not the newest candidate in the store."""
    trained = _meta(run.results[("lstm_model", None)])["model_id"]
    database = Database(run.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, trained)
        newer = model_store.save_model(conn, dataclasses.replace(record, id=None))
    database.close()
    assert newer > trained
    return newer


def _meta(result: dg.ExecuteInProcessResult) -> dict:
    event = result.get_asset_materialization_events()[0]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_candidate_is_stored_with_its_checks(modeled) -> None:
    result = modeled.results[("lstm_model", None)]
    meta = _meta(result)
    assert 20_000 <= meta["parameters"] <= 30_000
    assert meta["epochs"] == 2
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {GAP_CHECK, MAJORITY_CHECK}
    gap_check = checks[GAP_CHECK]  # judges the stored (best) epoch's gap
    assert gap_check.passed == (meta["gap"] <= gap_check.metadata["bound"].value)
    assert gap_check.metadata["best_epoch"].value == meta["best_epoch"]
    database = Database(modeled.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, meta["model_id"])
    database.close()
    assert record.status == "candidate"
    assert len(record.features) == 50
    # the factor basket live inference will use: the markets fitted on, as the asset used
    assert record.config["factor_basket"] == list(FACTOR_BASKET) == record.data_window["markets"]
    assert (
        record.data_window["validation"]["first_decision"]
        > record.data_window["train"]["last_decision"]
    )


def test_backtest_report_has_the_table_and_plot(modeled) -> None:
    meta = _meta(modeled.results[("backtest_report", "BTCUSDT")])
    for strategy in ("lstm", "always_long", "buy_and_hold", "logistic", "gbm"):
        assert strategy in meta["table"]
    assert meta["equity"].startswith("![equity](data:image/png;base64,")
    # The operating point's curve: every option tried on validation, one chosen, plotted.
    curve = meta["operating_curve"]
    assert curve.count("◀") == 1 and "![equity](data:image/png;base64," in curve
    assert meta["label_rule"]["horizon"] >= 1 and "threshold" in meta["operating_point"]


def test_backtest_report_judges_the_model_lstm_model_produced(modeled) -> None:
    trained = _meta(modeled.results[("lstm_model", None)])["model_id"]
    for market in market_partitions.get_partition_keys():
        assert _meta(modeled.results[("backtest_report", market)])["model_id"] == trained


def test_backtest_report_is_partitioned_by_market_only() -> None:
    assert backtest_report.partitions_def == market_partitions


def test_the_gate_refuses_then_promotes(modeled) -> None:
    refused = _meta(modeled.run("production_model", None, REFUSING))
    assert refused["passed"] is False and refused["promoted"] == -1
    assert "trades" in refused["reasons"]
    promoted = _meta(modeled.run("production_model", None, PERMISSIVE))
    assert promoted["passed"] is True
    assert promoted["candidate"] == _meta(modeled.results[("lstm_model", None)])["model_id"]
    database = Database(modeled.database_url)
    with database.connection() as conn:
        production = model_store.production_model(conn, "lstm", "1h")
    database.close()
    assert production is not None and production.id == promoted["candidate"]
