"""The portfolio strategy's chain through Dagster on a slice of the sample: funding_rates,
selected_features at the decision timeframe, the portfolio candidate, its report on
validation's judging half and the gate that judges money there."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipeline.partitions import DECISION_TIMEFRAME, market_partitions, partition_key
from pipeline.store import models as model_store
from pipeline.store.database import Database

# The session's chain of assets (tests/conftest.py) is built once, on one worker.
pytestmark = pytest.mark.xdist_group("chain")

SHARED_FUNDING = Path(__file__).resolve().parents[2].parent / "shared/data/binance-usdm-funding"
SELECTION = {
    "train_end": "2021-09-15",
    "validation_end": "2021-12-31",
    "folds": 2,
    "repeats": 1,
    "max_iter": 20,
}
MODEL = {
    "train_start": "2020-10-23",
    "train_end": "2021-09-15",
    "validation_end": "2021-12-31",
    "max_epochs": 2,
}
PERMISSIVE = {"min_sharpe": -100.0, "beat_trend": False, "max_drawdown": 1.0, "min_trades": 0}
REFUSING = {"min_trades": 1_000_000}


class PortfolioChain:
    """The portfolio assets materialised in-process, beside the session's barrier chain (same
    candles, database and instance; its own store and a funding folder)."""

    def __init__(self, chain, root: Path):
        from pipeline.definitions import PORTFOLIO_ASSETS
        from resources.exchange import CandleSourceResource
        from resources.io_managers import JsonIOManager, ParquetIOManager

        self.assets = PORTFOLIO_ASSETS
        self.database_url = chain.database_url
        self.instance = chain.instance
        funding = root / "funding"
        funding.mkdir()
        for path in SHARED_FUNDING.glob("*_funding.csv.gz"):
            shutil.copy(path, funding / path.name)
        source = chain.resources["candle_source"]
        self.resources = {
            **chain.resources,
            "candle_source": CandleSourceResource(
                source="csv", data_dir=source.data_dir, funding_dir=str(funding), since=source.since
            ),
            "parquet_io_manager": ParquetIOManager(base_uri=str(root / "store")),
            "json_io_manager": JsonIOManager(base_uri=str(root / "store")),
        }
        self.results: dict = {}

    def run(self, name: str, key=None, config: dict | None = None) -> dg.ExecuteInProcessResult:
        asset = next(a for a in self.assets if a.key.to_user_string() == name)
        result = dg.materialize(
            self.assets,
            selection=[asset],
            partition_key=key,
            resources=self.resources,
            instance=self.instance,
            run_config={"ops": {name: {"config": config}}} if config else None,
        )
        self.results[(name, key)] = result
        return result


def _meta(result: dg.ExecuteInProcessResult) -> dict:
    event = result.get_asset_materialization_events()[0]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def portfolio_chain(chain_run, tmp_path_factory) -> PortfolioChain:
    if not (SHARED_FUNDING / "BTCUSDT_funding.csv.gz").exists():
        pytest.fail(f"sample funding missing: expected {SHARED_FUNDING}", pytrace=False)
    chain = PortfolioChain(chain_run, tmp_path_factory.mktemp("portfolio"))
    markets = market_partitions.get_partition_keys()
    chain.run("market_factor", DECISION_TIMEFRAME)  # candles come from the shared database
    for market in markets:
        chain.run("funding_rates", market)
        chain.run("features", partition_key(market, DECISION_TIMEFRAME))
    chain.run("selected_features", None, SELECTION)
    chain.run("lstm_model", None, MODEL)
    chain.run("backtest_report")
    return chain


def _record(chain: PortfolioChain) -> model_store.ModelRecord:
    model_id = _meta(chain.results[("lstm_model", None)])["model_id"]
    database = Database(chain.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, model_id)
    database.close()
    return record


def test_funding_is_stored_where_it_is_recorded_and_nowhere_else(portfolio_chain) -> None:
    btc = _meta(portfolio_chain.results[("funding_rates", "BTCUSDT")])
    sol = _meta(portfolio_chain.results[("funding_rates", "SOLUSDT")])
    # The slice's candles end 2021-12-31, but the recorded history is whole: every 8 h.
    assert btc["rows_total"] == 3494 and btc["first_settlement"] == "2020-10-23T08:00:00Z"
    assert sol["rows_total"] == 0 and sol["first_settlement"] == "none"


def test_the_candidate_is_a_portfolio_model_with_its_operating_point(portfolio_chain) -> None:
    meta = _meta(portfolio_chain.results[("lstm_model", None)])
    record = _record(portfolio_chain)
    assert record.timeframe == DECISION_TIMEFRAME == meta["decision_timeframe"]
    config = record.config
    assert record.name == "portfolio" and config["kind"] == "portfolio"
    assert config["scorer"] == "gbm" and config["window"] == 1  # boosting reads the last row
    assert meta["trees"] >= 1 and config["label"]["barrier_k"] is None
    assert config["universe"] == [
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "SOL/USDT:USDT",
        "BNB/USDT:USDT",
        "XRP/USDT:USDT",
    ]
    assert config["coverage"] in (1.0, 0.5, 0.35, 0.2) and config["score_scale"] > 0
    assert sum(o["chosen"] for o in config["operating_options"]) == 1
    halves = record.data_window["validation_halves"]
    assert halves["choose"][1] < halves["judge"][0]  # the judging half comes after
    checks = {
        c.check_name: c.passed
        for c in portfolio_chain.results[("lstm_model", None)].get_asset_check_evaluations()
    }
    assert set(checks) == {"lstm_model_gap_within_bound", "lstm_model_beats_majority"}
    judged = record.metrics["judged"]
    assert judged["trades"] >= 0 and math.isfinite(judged["total_return"])


def test_the_report_replays_the_judging_half_beside_the_baselines(portfolio_chain) -> None:
    meta = _meta(portfolio_chain.results[("backtest_report", None)])
    table = meta["table"]
    for name in ("candidate", "trend", "xs_momentum", "buy_and_hold"):
        assert f"| {name} " in table
    attribution = meta["attribution"].splitlines()
    assert len(attribution) == 2 + 5
    # Recorded funding for BTC (no settlement at the constant), none for SOL (all of them).
    btc = next(r for r in attribution if r.startswith("| BTC/USDT:USDT"))
    sol = next(r for r in attribution if r.startswith("| SOL/USDT:USDT"))
    btc_cells, sol_cells = btc.strip("|").split("|"), sol.strip("|").split("|")
    assert int(btc_cells[-1]) == 0 < int(btc_cells[-2])
    assert int(sol_cells[-1]) == int(sol_cells[-2]) > 0
    assert meta["equity"].startswith("![equity and exposure](data:image/png;base64,")
    # The report scores the stored model (its trees, as live does), the candidate the fitted
    # one: the judged figures agree.
    record = _record(portfolio_chain)
    assert meta["scorer"] == record.config["scorer"] == "gbm"  # the rule's default
    assert meta["candidate_total_return"] == pytest.approx(
        record.metrics["judged"]["total_return"], rel=1e-3, abs=1e-6
    )
    assert meta["judging_half"].startswith(record.data_window["validation_halves"]["judge"][0][:10])


def test_the_gate_judges_money_on_the_judging_half(portfolio_chain) -> None:
    refused = portfolio_chain.run("production_model", None, REFUSING)
    meta = _meta(refused)
    assert meta["outcome"] == "refused" and "fills < 1000000" in meta["reasons"]
    (check,) = refused.get_asset_check_evaluations()
    assert not check.passed and check.description.startswith("refused: ")
    assert check.severity == dg.AssetCheckSeverity.ERROR  # red: a refusal does not look healthy
    assert "| trend |" in meta["judged"] and "| candidate |" in meta["judged"]
    promoted = _meta(portfolio_chain.run("production_model", None, PERMISSIVE))
    assert promoted["outcome"] == "promoted" and promoted["production"] == promoted["candidate"]
    database = Database(portfolio_chain.database_url)
    with database.connection() as conn:
        production = model_store.production_model(conn, "portfolio", DECISION_TIMEFRAME)
    database.close()
    assert production is not None and production.id == promoted["candidate"]


def test_the_lstm_ships_when_asked_and_scores_as_the_candidate_did(portfolio_chain) -> None:
    meta = _meta(portfolio_chain.run("lstm_model", None, {**MODEL, "scorer": "lstm"}))
    database = Database(portfolio_chain.database_url)
    with database.connection() as conn:
        record = model_store.load_model(conn, meta["model_id"])
    database.close()
    assert record.config["scorer"] == "lstm" and record.config["window"] == 8
    assert meta["parameters"] == record.metrics["n_parameters"] > 0
    report = _meta(portfolio_chain.run("backtest_report"))
    assert report["scorer"] == "lstm"
    # The candidate scored validation in batches, the report one window at a time (the live
    # path, whose last bits may differ): the judged figures agree to rounding.
    assert report["candidate_total_return"] == pytest.approx(
        record.metrics["judged"]["total_return"], rel=1e-3, abs=1e-6
    )


def test_live_replay_of_the_portfolio_equals_its_backtest(portfolio_chain, tmp_path) -> None:
    """`signals live --replay` under the portfolio strategy, in a process of its own (the
    strategy is read at import): the promoted model decides every market of each candle in one
    run of the real sensor and job, trades one paper account, and equals the backtest."""
    import json
    import os
    import subprocess
    import sys

    source = portfolio_chain.resources["candle_source"]
    out = tmp_path / "parity.json"
    env = {
        **os.environ,
        "SIGNALS_STRATEGY": "portfolio",
        "SIGNALS_DATABASE_URL": portfolio_chain.database_url,
        "SIGNALS_DATA_DIR": source.data_dir,
        "SIGNALS_FUNDING_DIR": source.funding_dir,
        "SIGNALS_HOME": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "live",
            "--replay",
            "--start",
            "2021-12-20",
            "--candles",
            "18",
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    parity = json.loads(out.read_text())
    assert parity["live_decisions"] == parity["compared"] == 18
    assert parity["identical_decisions"] and parity["score_max_abs_diff"] == 0.0
    assert parity["same_fills"] and parity["live_fills"] == parity["backtest_fills"]
    assert parity["price_max_abs_diff"] == 0.0
    assert "18 4h candles × 5 markets" in done.stdout
