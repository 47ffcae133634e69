"""Walk-forward evaluation on a small slice: nothing fitted sees its test period."""

import dataclasses
import uuid

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.search_space import SearchSpace
from pipeline.evaluation.tuned import TuningConfig
from pipeline.evaluation.walk_forward import EvaluationConfig, evaluate, fold_plan
from pipeline.exchange.markets import symbol_from_id
from pipeline.features.labels import LabelRule
from pipeline.model.training import TrainConfig

CFG = EvaluationConfig(
    markets=("BTC/USDT:USDT", "ETH/USDT:USDT"),
    train_start="2021-02-01",
    train_end="2021-10-31",
    test_start="2021-11-01",
    test_end="2021-12-31",
    # Two label rules to choose between, on the fit window (the full grid takes minutes).
    label_candidates=(LabelRule(horizon=6, barrier_k=1.0), LabelRule(horizon=12, barrier_k=1.5)),
    n_select=20,
    random_draws=40,
    seeds=(1,),
    train=TrainConfig(window=8, max_epochs=1, hidden=16),
    # A tiny study per refit (three trials on a small space) and a two-seed ensemble.
    tuning=TuningConfig(
        budget=3,
        ensemble=2,
        space=SearchSpace(
            windows=(4, 8),
            hidden=(8, 16),
            horizons=(6, 12),
            barrier_k=(1.0, 1.5),
            coverages=(0.2, 0.35),
        ),
    ),
)
END = 1640995200000  # 2022-01-01


def _candles(sample_frames) -> dict[str, pd.DataFrame]:
    return {
        symbol_from_id(m): f[f["timestamp"] < END].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT")
    }


def _shake_test_period(candles: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    cut = pd.Timestamp(CFG.test_start, tz="UTC").value // 1_000_000
    rng = np.random.default_rng(3)
    out = {}
    for symbol, frame in candles.items():
        frame = frame.copy()
        later = frame["timestamp"] >= cut
        scale = np.exp(np.cumsum(rng.normal(0, 0.02, int(later.sum()))))
        for col in ("open", "high", "low", "close"):
            frame.loc[later, col] *= scale
        out[symbol] = frame
    return out


@pytest.fixture(scope="module")
def ledger(pg_server):
    from pipeline.store.database import Database, fresh_database

    database = Database(fresh_database(pg_server, "walk_forward_ledger"))
    yield database
    database.close()


@pytest.fixture(scope="module")
def reports(sample_frames, ledger):
    candles = _candles(sample_frames)
    run = uuid.uuid4().hex[:8]  # new studies each time (the same prefix would resume them)
    first = evaluate(candles, _studies(f"{run}a"), ledger=ledger)
    second = evaluate(_shake_test_period(candles), _studies(f"{run}b"), ledger=ledger)
    return first, second


def _studies(prefix: str) -> EvaluationConfig:
    return dataclasses.replace(CFG, tuning=dataclasses.replace(CFG.tuning, study_prefix=prefix))


def test_every_evaluation_appends_to_the_trials_ledger(reports, ledger) -> None:
    from pipeline.store.trials import list_trials

    first, second = reports
    assert (first["trials"]["looks"], second["trials"]["looks"]) == (1, 2)
    # Every tuning trial is in the same ledger and counted: three per study, one study each.
    assert (first["trials"]["tuning_trials"], second["trials"]["tuning_trials"]) == (3, 6)
    assert (first["trials"]["trials"], second["trials"]["trials"]) == (4, 8)
    with ledger.connection() as conn:
        every = list_trials(conn)
    rows = [r for r in every if r["kind"] == "walk_forward"]
    assert [r["id"] for r in rows] == [second["trials"]["trial_id"], first["trials"]["trial_id"]]
    tuning = [r for r in every if r["kind"] == "tuning"]
    studies = {r["config"]["study"] for r in tuning}
    assert studies == {first["folds"][0]["tuned"]["study"], second["folds"][0]["tuned"]["study"]}
    assert all(r["period_end"] <= pd.Timestamp(CFG.test_start, tz="UTC") for r in tuning)
    assert rows[1]["figures"]["sharpe"] == pytest.approx(
        first["pooled"]["lstm"]["backtest"]["sharpe"]
    )
    # One look, but three tuning trials beside it: the benchmark is already positive, for the
    # untuned LSTM and each tuned one alike.
    for report in reports:
        deflated = report["trials"]["deflated"]
        assert set(deflated) == {"lstm", "lstm_tuned", "lstm_ensemble"}
        assert all(d["expected_max_sharpe"] > 0.0 for d in deflated.values())


def test_report_has_every_strategy_and_the_calibration(reports) -> None:
    report, _ = reports
    pooled = report["pooled"]
    assert set(pooled) == {
        "lstm",
        "lstm_tuned",
        "lstm_ensemble",
        "logistic",
        "gbm",
        "momentum",
        "always_long",
        "buy_and_hold",
    }
    lstm = pooled["lstm"]
    assert lstm["samples"] > 0 and 0 <= lstm["accuracy"] <= 1
    assert len(lstm["test_reliability"]) == 10
    assert lstm["test_precision_coverage"][0]["coverage"] == 1.0
    assert set(report["markets"]) == set(CFG.markets)
    assert report["folds"][0]["validation_precision_coverage"]
    # Every model's operating point was chosen among the options, each option shown.
    for name in ("lstm", "logistic", "gbm", "momentum"):
        options = report["folds"][0]["operating_points"][name]["options"]
        assert len(options) == 12 and sum(o["chosen"] for o in options) == 1
    assert len(report["label_choice"]["options"]) == 2
    assert report["random_entries"]["draws"] == 40
    for null in ("uniform", "same_candles"):
        assert 0 <= report["random_entries"][null]["sharpe_percentile"] <= 100
    assert set(report["cost_sensitivity"]["lstm"]) == {"0.0002", "0.0005", "0.0007"}
    # Per-seed spread: seed 0 is the reported LSTM; seed 1 is refitted on the same fold.
    spread = report["seed_spread"]
    assert spread["seeds"] == [0, 1]
    assert spread["per_seed"][0]["sharpe"] == report["pooled"]["lstm"]["backtest"]["sharpe"]
    low, high = spread["spread"]["sharpe"]["min"], spread["spread"]["sharpe"]["max"]
    assert low <= spread["per_seed"][1]["sharpe"] <= high
    assert spread["per_seed"][1] != spread["per_seed"][0]  # the other seed was really used
    # The tuned model: seed 0 is `lstm_tuned`, seed 1 the ensemble's second member; both
    # exit by the rule the refit's study chose.
    tuned = report["tuned_seed_spread"]
    assert tuned["seeds"] == [0, 1]
    assert tuned["per_seed"][0]["sharpe"] == pooled["lstm_tuned"]["backtest"]["sharpe"]
    rule = report["folds"][0]["tuned"]["label"]
    assert report["tuned_exits"] == [
        {
            "from": "2021-11-01T00:00:00+00:00",
            "horizon": rule["horizon"],
            "barrier_k": rule["barrier_k"],
        }
    ]
    assert set(report["folds"][0]["tuned"]["ensemble_validation"]) == {1}  # sizes ≤ 2 members


def test_selection_scaler_threshold_and_training_ignore_the_test_period(reports) -> None:
    """Changing every candle of the test period leaves everything fitted unchanged: the
    label rule, the selection, the edge, every operating point (threshold) and training."""
    first, second = reports
    assert first["label_rule"] == second["label_rule"]
    assert first["label_choice"] == second["label_choice"]
    a, b = first["folds"][0], second["folds"][0]
    assert a["selected"] == b["selected"]
    assert a["edge"] == b["edge"]
    assert a["scaler_sha256"] == b["scaler_sha256"]
    assert a["operating_points"] == b["operating_points"]
    # The study: every trial's parameters and value, hence the frozen best, and the ensemble.
    ta, tb = a["tuned"], b["tuned"]
    assert ta["study"] != tb["study"]  # two studies really ran (no resumed one)
    assert [t["number"] for t in ta["trials"]] == [0, 1, 2]
    for x, y in zip(ta["trials"], tb["trials"], strict=True):
        assert {k: v for k, v in x.items() if "seconds" not in k} == {
            k: v for k, v in y.items() if "seconds" not in k
        }
    assert ta["params"] == tb["params"]
    assert ta["members"] == tb["members"] and ta["ensemble_point"] == tb["ensemble_point"]
    assert len(a["epochs"]) == len(b["epochs"])
    for ea, eb in zip(a["epochs"], b["epochs"], strict=True):
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "gap"):
            assert ea[key] == eb[key]  # seconds differ; every learned figure is identical
    # ... while the test figures do move
    assert (
        first["pooled"]["buy_and_hold"]["backtest"] != second["pooled"]["buy_and_hold"]["backtest"]
    )


def test_folds_are_embargoed_from_their_test_slices() -> None:
    plan = fold_plan(dataclasses.replace(CFG, folds=3))
    embargo = pd.Timedelta(hours=CFG.train.window + CFG.horizon)
    for fold in plan:
        assert fold["fit_end"] - pd.Timedelta(hours=CFG.horizon) + embargo <= fold["test_start"]
        assert fold["fit_start"] < fold["train_end"] < fold["fit_end"]
    assert plan[1]["test_start"] > plan[0]["test_end"]
