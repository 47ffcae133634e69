"""Jobs: named selections of assets that schedules, sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from pipeline.partitions import (
    STRATEGY,
    market_partitions,
    ohlcv_partitions,
    timeframe_partitions,
)

PORTFOLIO = STRATEGY == "portfolio"
# The portfolio strategy's model is trained without the barrier study (whose search space is
# the barrier rule's); the barrier strategy's with it.
TRAINING_ASSETS = (
    ("selected_features", "lstm_model")
    if PORTFOLIO
    else ("selected_features", "hyperparameter_study", "lstm_model")
)

ohlcv_job = dg.define_asset_job(
    "ohlcv_job",
    selection=dg.AssetSelection.assets("ohlcv"),
    partitions_def=ohlcv_partitions,
    description="Ingest one market × timeframe partition's new closed candles (incremental, "
    "validated, idempotent). Launched hourly by ohlcv_refresh_schedule, or as a backfill.",
)

# The weekly retraining: a fresh selection, the study (tuning within its budget), a candidate
# with the study's best parameters, and the gate. Candles and features stay fresh on their
# own (ohlcv_refresh_schedule and the assets' automation conditions).
retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS, "production_model"),
    description="Reselect the features, tune within the study's budget, train a candidate "
    "with the best trial, and let the gate decide (a refusal fails the ERROR check "
    "production_model_gate_passed). Launched weekly by retraining_schedule.",
)

# The main job (`signals run`, `make run`) as named jobs, one per partitioning: each of its
# runs belongs to a job of the Definitions, so the UI lists it under that job and can
# re-execute it. ohlcv_job above is the first of them.
market_factor_job = dg.define_asset_job(
    "market_factor_job",
    selection=dg.AssetSelection.assets("market_factor"),
    partitions_def=timeframe_partitions,
    description="The market factor of one timeframe (every market's candles on it), from "
    "the stored candles. The main job's second stage.",
)

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets("features"),
    partitions_def=ohlcv_partitions,
    description="The 79 candidate features of one market × timeframe partition, checked "
    "for leakage. The main job's third stage.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
    description="Select the features and train a candidate: the portfolio strategy's LSTM "
    "scorer with its operating point chosen on validation's first half, or the barrier "
    "strategy's with the study's best trial (checks: the train/validation gap, the majority "
    "class). The main job's fourth stage; a candidate that passes its checks decides in "
    "shadow at once.",
)

backtest_job = dg.define_asset_job(
    "backtest_job",
    selection=dg.AssetSelection.assets("backtest_report"),
    partitions_def=None if PORTFOLIO else market_partitions,
    description="Replay the newest candidate beside the baselines, with costs: as one "
    "portfolio over validation's judging half, or (barrier strategy) one market over its "
    "validation period. The main job's fifth stage.",
)

funding_job = dg.define_asset_job(
    "funding_job",
    selection=dg.AssetSelection.assets("funding_rates"),
    partitions_def=market_partitions,
    description="Ingest one market's recorded funding settlements (incremental, validated, "
    "idempotent): what every portfolio verdict charges.",
)

gate_job = dg.define_asset_job(
    "gate_job",
    selection=dg.AssetSelection.assets("production_model"),
    description="The gate: promote the candidate only if its pooled validation backtest "
    "passes every bound and beats production (a refusal fails the ERROR check "
    "production_model_gate_passed). The main job's last stage.",
)

# The main job's named jobs, in the order its stages run.
MAIN_JOB_SEQUENCE = [
    ohlcv_job,
    *([funding_job] if PORTFOLIO else []),
    market_factor_job,
    features_job,
    training_job,
    backtest_job,
    gate_job,
]
# Which named job materialises each asset of the main job.
MAIN_JOBS: dict[str, dg.UnresolvedAssetJobDefinition] = {
    "ohlcv": ohlcv_job,
    **({"funding_rates": funding_job} if PORTFOLIO else {}),
    "market_factor": market_factor_job,
    "features": features_job,
    "selected_features": training_job,
    **({} if PORTFOLIO else {"hyperparameter_study": training_job}),
    "lstm_model": training_job,
    "backtest_report": backtest_job,
    "production_model": gate_job,
}

# The drift watch over the live signals (assets/live.py), run by live_checks_schedule or
# from the check's page.
live_checks_job = dg.define_asset_job(
    "live_checks_job",
    selection=dg.AssetSelection.checks_for_assets("live_signals"),
    description="The drift watch: each market's recent features against the deciding "
    "model's training window, and its resolved signals' calibration against validation "
    "(check live_signals_inputs_and_calibration_hold). Launched by live_checks_schedule.",
)
