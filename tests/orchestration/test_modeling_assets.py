"""hyperparameter_study, lstm_model, backtest_report and production_model through Dagster,
on a small slice."""

import dataclasses
import re

import dagster as dg
import pytest

from assets.modeling import GAP_CHECK, GATE_CHECK, MAJORITY_CHECK, backtest_report, with_study
from assets.tuning import validation_share
from pipeline.evaluation.search_space import TrialParams, lstm_parameters
from pipeline.evaluation.tuning import StudySpec, open_study
from pipeline.partitions import FACTOR_BASKET, market_partitions
from pipeline.reporting.text import rounded_json, significant
from pipeline.store import models as model_store
from pipeline.store.database import Database
from pipeline.store.studies import study_database_url

# The session's chain of assets (tests/conftest.py) is built once, on one worker.
pytestmark = pytest.mark.xdist_group("chain")

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


STUDY_BUDGET = 3
ENSEMBLE = 2


@pytest.fixture(scope="module")
def modeled(chain_run):
    window = ("train_start", "train_end", "validation_end", "max_epochs")
    study = {"budget": STUDY_BUDGET, **{k: chain_run.MODEL[k] for k in window}}
    chain_run.run("hyperparameter_study", None, study)
    # A two-network ensemble: the record, the report and the gate as for the default three
    # (tests/cli/test_cli.py runs the default), at one extra training instead of two.
    chain_run.run("lstm_model", None, {**chain_run.MODEL, "ensemble": ENSEMBLE})
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


def _study(run):
    """The study hyperparameter_study ran, opened from PostgreSQL."""
    name = _meta(run.results[("hyperparameter_study", None)])["study"]
    return open_study(StudySpec(name, study_database_url(run.database_url), STUDY_BUDGET))


def test_the_study_runs_its_budget_and_shows_its_best_trials(modeled) -> None:
    meta = _meta(modeled.results[("hyperparameter_study", None)])
    study = _study(modeled)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == STUDY_BUDGET == meta["budget"]
    assert meta["trials_complete"] + meta["trials_pruned"] == STUDY_BUDGET
    assert meta["trials_complete"] >= 1
    # Shown rounded to 4 significant digits; the asset's value keeps them exact.
    assert meta["best_value"] == pytest.approx(study.best_value, rel=1e-3)
    assert meta["best_params"] == rounded_json(
        TrialParams.from_json(study.best_trial.params).to_json()
    )
    table = meta["best_trials"].splitlines()
    assert table[0].startswith("| number | value | window | hidden | n_parameters |")
    assert len(table) == 2 + min(5, meta["trials_complete"])
    assert table[2].startswith(f"| {study.best_trial.number} |")  # best first
    assert meta["objective"].startswith("![objective](data:image/png;base64,")


def test_the_candidate_trains_with_the_study_best_parameters(modeled) -> None:
    best = TrialParams.from_json(_study(modeled).best_trial.params)
    study_meta = _meta(modeled.results[("hyperparameter_study", None)])
    meta = _meta(modeled.results[("lstm_model", None)])
    assert meta["study"] == study_meta["study"]
    assert meta["tuned_params"] == rounded_json(best.to_json())  # shown to 4 digits
    assert meta["parameters"] == lstm_parameters(50, best.hidden) <= 30_000
    database = Database(modeled.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, meta["model_id"])
    database.close()
    assert (record.config["window"], record.config["hidden"]) == (best.window, best.hidden)
    assert record.config["label"]["horizon"] == best.horizon
    assert record.config["label"]["barrier_k"] == best.barrier_k
    assert record.config["study"] == {
        "name": study_meta["study"],
        "params": best.to_json(),
        "value": pytest.approx(study_meta["best_value"], rel=1e-3),  # shown rounded
    }


def test_the_last_inner_fold_is_the_candidates_split() -> None:
    share = validation_share("2021-01-01", "2021-10-01", "2021-12-31", inner_folds=2)
    assert share == pytest.approx(91 / 364)
    with pytest.raises(ValueError, match="no training part"):
        validation_share("2021-01-01", "2021-06-01", "2021-12-31", inner_folds=2)
    with pytest.raises(ValueError, match="train_start < train_end"):
        validation_share("2021-01-01", "2022-01-01", "2021-12-31", inner_folds=1)


def test_with_study_changes_only_what_the_study_searched() -> None:
    from pipeline.evaluation.candidate import CandidateConfig

    params = TrialParams(24, 32, 0.3, 2e-3, 1e-4, 6, 2.0, 0.2)
    base = CandidateConfig(train_start="2021-01-01", train_end="2021-10-01", val_end="2022-01-01")
    tuned = with_study(base, params)
    assert (tuned.train.window, tuned.train.hidden, tuned.train.lr) == (24, 32, 2e-3)
    assert (tuned.label.horizon, tuned.label.barrier_k) == (6, 2.0)
    assert tuned.operating.coverages == (0.2,) and tuned.operating.fixed_threshold is None
    assert tuned.train.max_epochs == base.train.max_epochs
    assert tuned.train.seed == base.train.seed and tuned.label.margin == base.label.margin
    assert tuned.train_end == base.train_end


def test_candidate_is_stored_with_its_checks(modeled) -> None:
    result = modeled.results[("lstm_model", None)]
    meta = _meta(result)
    assert meta["epochs"] == 2
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {GAP_CHECK, MAJORITY_CHECK}
    database = Database(modeled.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, meta["model_id"])
    database.close()
    gap_check = checks[GAP_CHECK]  # judges the stored (best) epoch's gap, exact not as shown
    assert gap_check.passed == (record.metrics["gap"] <= gap_check.metadata["bound"].value)
    assert gap_check.metadata["gap"].value == meta["gap"] == significant(record.metrics["gap"])
    assert gap_check.metadata["best_epoch"].value == meta["best_epoch"]
    assert record.status == "candidate"
    assert len(record.features) == 50
    # A seed ensemble is one record, each network checksummed (the store verified them on
    # load), its gap the widest member's.
    assert meta["networks"] == ENSEMBLE == len(record.members)
    assert record.seeds == meta["seeds"] == [0, 1] and record.checkpoint == b""
    assert record.config["ensemble"] == {"size": ENSEMBLE, "seeds": [0, 1]}
    assert record.metrics["gap"] == max(m["gap"] for m in record.metrics["members"])
    assert meta["members"].count("\n") == 1 + ENSEMBLE  # header, rule, one row per member
    # The checks travel with the model: the live job lets it decide in shadow only when its
    # ERROR check (the gap) passed; beating the majority is a WARN the gate enforces.
    assert record.metrics["checks"] == {
        GAP_CHECK: {"passed": gap_check.passed, "severity": "ERROR"},
        MAJORITY_CHECK: {"passed": checks[MAJORITY_CHECK].passed, "severity": "WARN"},
    }
    assert checks[MAJORITY_CHECK].severity == dg.AssetCheckSeverity.WARN
    # the factor basket live inference will use: the markets fitted on, as the asset used
    assert record.config["factor_basket"] == list(FACTOR_BASKET) == record.data_window["markets"]
    assert (
        record.data_window["validation"]["first_decision"]
        > record.data_window["train"]["last_decision"]
    )


PNG_MARKDOWN = "](data:image/png;base64,"
UTC_WINDOW = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC … \d{4}-\d\d-\d\d \d\d:\d\d UTC$")


def _tables_fit(meta: dict) -> None:
    """No markdown table in the metadata is wider than 12 columns."""
    for key, value in meta.items():
        if isinstance(value, str):
            for line in value.splitlines():
                if line.startswith("|"):
                    assert line.replace("\\|", "").count("|") - 1 <= 12, f"{key}: {line}"


def _rounded(value: float) -> bool:
    return significant(value) == value


def test_candidate_metadata_has_plots_and_figures_to_follow(modeled) -> None:
    meta = _meta(modeled.results[("lstm_model", None)])
    assert meta["training_curves"].startswith("![training curves" + PNG_MARKDOWN)
    assert "| epoch |" in meta["training_curves"]  # two epochs: short, so a table too
    assert meta["reliability"].startswith("![reliability" + PNG_MARKDOWN)
    assert "curves" not in meta  # the text table it replaces
    for key in ("val_accuracy", "gap", "val_ece", "threshold", "val_majority_accuracy"):
        assert isinstance(meta[key], float) and _rounded(meta[key]), key
    assert isinstance(meta["coverage"], float) and 0 < meta["coverage"] <= 1  # the study's
    for key in ("parameters", "epochs", "best_epoch", "val_trades"):
        assert isinstance(meta[key], int), key
    assert UTC_WINDOW.match(meta["train_window"]) and UTC_WINDOW.match(meta["validation_window"])
    assert meta["operating_options"].count("◀") == 1
    _tables_fit(meta)


def test_backtest_report_has_narrow_tables_and_plots(modeled) -> None:
    meta = _meta(modeled.results[("backtest_report", "BTCUSDT")])
    for key in ("table", "trades", "costs"):  # three narrow tables; `table` keeps its key
        for strategy in ("lstm", "always_long", "buy_and_hold", "logistic", "gbm"):
            assert f"| {strategy} |" in meta[key], key
    assert "Sharpe" in meta["table"] and "win rate" in meta["trades"]
    assert "costs / trade" in meta["costs"]
    _tables_fit(meta)
    assert meta["equity"].startswith("![equity" + PNG_MARKDOWN)
    # The operating point's curve: every option tried on validation, one chosen, plotted
    # with its intervals (said which in the caption).
    assert meta["operating_curve"].startswith("![operating curve" + PNG_MARKDOWN)
    assert "Wilson" in meta["operating_curve"] and "bootstrap" in meta["operating_curve"]
    assert meta["operating_options"].count("◀") == 1
    assert meta["label_rule"]["horizon"] >= 1 and "threshold" in meta["operating_point"]
    assert UTC_WINDOW.match(meta["validation_window"])
    # Figures to follow: rounded numbers; no win rate without trades, never a -1 sentinel.
    assert isinstance(meta["lstm_trades"], int)
    assert ("lstm_win_rate" in meta) == (meta["lstm_trades"] > 0)
    for key, value in meta.items():
        if key.startswith("lstm_") and key != "lstm_trades":
            assert isinstance(value, float) and _rounded(value), key
    assert meta.get("lstm_win_rate", 0.0) >= 0.0


def test_backtest_report_judges_the_model_lstm_model_produced(modeled) -> None:
    trained = _meta(modeled.results[("lstm_model", None)])["model_id"]
    for market in market_partitions.get_partition_keys():
        assert _meta(modeled.results[("backtest_report", market)])["model_id"] == trained


def test_backtest_report_is_partitioned_by_market_only() -> None:
    assert backtest_report.partitions_def == market_partitions


def test_the_gate_refuses_then_promotes(modeled) -> None:
    run = modeled.run("production_model", None, REFUSING)
    refused = _meta(run)
    assert refused["passed"] is False and refused["outcome"] == "refused"
    assert "promoted" not in refused and "trades" in refused["reasons"]
    assert refused["production"].startswith("none")  # no sentinel id
    # The refusal is visible: the gate's check fails, at ERROR (red), with the reasons.
    (check,) = run.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == (GATE_CHECK, False)
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert "trades" in check.metadata["reasons"].value
    run = modeled.run("production_model", None, PERMISSIVE)
    promoted = _meta(run)
    assert promoted["passed"] is True and promoted["promoted"] == promoted["candidate"]
    assert [c.passed for c in run.get_asset_check_evaluations()] == [True]
    assert promoted["candidate"] == _meta(modeled.results[("lstm_model", None)])["model_id"]
    database = Database(modeled.database_url)
    with database.connection() as conn:
        production = model_store.production_model(conn, "lstm", "1h")
    database.close()
    assert production is not None and production.id == promoted["candidate"]
    assert production.seeds == [0, 1]  # the ensemble was judged and promoted as one model
