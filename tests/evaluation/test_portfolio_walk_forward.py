"""The portfolio walk-forward on a small slice: every strategy through one layer and one
backtest, nothing fitted sees its test period, every look is in the ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest.portfolio import PortfolioCosts
from pipeline.evaluation.portfolio_walk_forward import (
    DEFAULT_CANDIDATES,
    STRATEGIES,
    PortfolioEvaluationConfig,
    evaluate_portfolio,
)
from pipeline.evaluation.walk_forward import fold_plan
from pipeline.exchange.markets import symbol_from_id
from pipeline.model.training import TrainConfig
from tests.evaluation.test_walk_forward import END

CFG = PortfolioEvaluationConfig(
    markets=("BTC/USDT:USDT", "ETH/USDT:USDT"),
    train_start="2021-02-01",
    train_end="2021-10-31",
    test_start="2021-11-01",
    test_end="2021-12-31",
    timeframe="4h",
    folds=2,
    n_select=15,
    random_draws=10,
    seeds=(1,),
    train=TrainConfig(window=4, max_epochs=1, hidden=8),
    costs=PortfolioCosts(),
)


def _hourly(sample_frames) -> dict[str, pd.DataFrame]:
    return {
        symbol_from_id(m): f[f["timestamp"] < END].reset_index(drop=True)
        for m, f in sample_frames.items()
        if m in ("BTCUSDT", "ETHUSDT")
    }


def _shake_last_slice(hourly: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every candle of the last fold's test slice moved by a random walk: a later fold may
    train on an earlier fold's slice, so only the last slice is unseen by every fit."""
    cut = fold_plan(CFG)[-1]["test_start"].value // 1_000_000
    rng = np.random.default_rng(3)
    out = {}
    for symbol, frame in hourly.items():
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

    database = Database(fresh_database(pg_server, "portfolio_ledger"))
    yield database
    database.close()


@pytest.fixture(scope="module")
def reports(sample_frames, ledger):
    hourly = _hourly(sample_frames)
    first = evaluate_portfolio(hourly, CFG, ledger=ledger)
    second = evaluate_portfolio(_shake_last_slice(hourly), CFG, ledger=ledger)
    return first, second


def test_every_strategy_is_reported_through_the_same_layer_and_costs(reports) -> None:
    report, _ = reports
    pooled = report["pooled"]
    assert set(STRATEGIES) | {"lstm_seed1"} == set(pooled)
    for name in STRATEGIES:
        figures = pooled[name]
        assert set(figures) >= {"total_return", "sharpe", "max_drawdown", "turnover_per_year"}
        assert np.isfinite(figures["total_return"]) and figures["trades"] >= 1
    assert pooled["buy_and_hold"]["trades"] == 2  # one order per market, then held
    # The same decisions at higher fees cost more.
    trend = report["cost_sensitivity"]["trend"]
    assert trend["0.0002"]["total_return"] > trend["0.0005"]["total_return"]
    assert trend["0.0005"]["total_return"] > trend["0.0007"]["total_return"]
    assert report["default_strategy"] in DEFAULT_CANDIDATES
    assert report["default_strategy"] in pooled
    assert report["random_scores"]["draws"] == 10
    assert 0 <= report["random_scores"]["lstm_sharpe_percentile"] <= 100
    assert report["seed_spread"]["seeds"] == [0, 1]
    # Funding: ETH and BTC have no recorded history here: every settlement at the constant.
    assert all(f["filled_by_constant"] == f["settlements"] > 0 for f in report["funding"].values())
    for fold in report["folds"]:
        for name in ("lstm", "gbm", "logistic", "blend"):
            options = fold["choices"][name]["options"]
            assert len(options) == 4 and sum(o["chosen"] for o in options) == 1


def test_nothing_fitted_sees_the_test_period(reports) -> None:
    """Every candle of the last test slice changed: in every fold the selection, the score
    scales, every operating point and the figures each was judged by are unchanged."""
    first, second = reports
    for a, b in zip(first["folds"], second["folds"], strict=True):
        assert a["selected"] == b["selected"]
        assert a["score_scales"] == b["score_scales"]
        assert a["choices"] == b["choices"]
        assert a["validation_accuracy"] == b["validation_accuracy"]
    assert first["validation_judged"] == second["validation_judged"]
    assert first["default_strategy"] == second["default_strategy"]
    # ... while the test figures do move.
    assert first["pooled"]["buy_and_hold"] != second["pooled"]["buy_and_hold"]


def test_every_look_is_in_the_ledger_and_deflated(reports, ledger) -> None:
    from pipeline.store.trials import list_trials

    first, second = reports
    assert (first["trials"]["looks"], second["trials"]["looks"]) == (1, 2)
    with ledger.connection() as conn:
        rows = [r for r in list_trials(conn) if r["kind"] == "portfolio_walk_forward"]
    assert [r["id"] for r in rows] == [second["trials"]["trial_id"], first["trials"]["trial_id"]]
    assert rows[1]["figures"]["default_strategy"] == first["default_strategy"]
    deflated = second["trials"]["deflated"]
    assert set(deflated) == {"lstm", "gbm", "logistic", "blend", "trend"}
    assert all(d is None or 0.0 <= d["dsr"] <= 1.0 for d in deflated.values())
