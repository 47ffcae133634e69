"""A walk-forward look at a test period, recorded in the trials ledger and deflated by it.

Every evaluation appends one row (its config, its test period, its pooled figures) before
its figures are reported; the report then states how many looks at an overlapping test
period the ledger holds, and the deflated Sharpe ratio of the LSTM's pooled per-candle
returns given that many tries and the spread of their Sharpe ratios (Bailey & López de
Prado, 2014; `pipeline.stats.deflated_sharpe`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.engine import BacktestResult
from pipeline.backtest.metrics import candle_returns
from pipeline.backtest.pool import pool_equity
from pipeline.evaluation.tuned import TUNED_MODELS
from pipeline.evaluation.window_search import TUNING_KIND
from pipeline.stats import deflated_sharpe_from_returns, trials_sharpe_variance
from pipeline.store import trials as ledger
from pipeline.store.database import Database

KIND = "walk_forward"


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    keys = ("trades", "win_rate", "total_return", "sharpe", "sortino", "max_drawdown")
    return {k: float(metrics[k]) for k in (*keys, "profit_factor") if k in metrics}


def record_look(
    db: Database,
    report: dict[str, Any],
    backtests: dict[str, dict[str, BacktestResult]],
    periods_per_year: float,
) -> dict[str, Any]:
    """Append this evaluation to the ledger; return the trial count and the deflated Sharpe
    of each LSTM variant in the report.

    The count is every look at an overlapping test period plus every tuning trial the ledger
    holds (each searched configuration was a try, wherever its validation lay); the spread
    of their recorded Sharpe ratios sets the benchmark.
    """
    config = {**report["config"], "label_rule": report["label_rule"]}
    start = pd.Timestamp(config["test_start"], tz="UTC")
    end = pd.Timestamp(config["test_end"], tz="UTC")
    pooled = report["pooled"]
    figures = {
        **_headline(pooled["lstm"]["backtest"]),
        "strategies": {name: _headline(f["backtest"]) for name, f in pooled.items()},
        "sharpe_basis": "annualised from per-candle returns of the pooled equity",
    }
    with db.connection() as conn:
        trial_id = ledger.append_trial(
            conn,
            kind=KIND,
            config=config,
            period_start=start.to_pydatetime(),
            period_end=end.to_pydatetime(),
            figures=figures,
        )
        looks = ledger.count_trials(conn, kind=KIND, period_start=start, period_end=end)
        tuning = ledger.count_trials(conn, kind=TUNING_KIND)
        sharpes = ledger.trial_sharpes(conn, kind=KIND, period_start=start, period_end=end)
        sharpes += ledger.trial_sharpes(conn, kind=TUNING_KIND)
    trials = looks + tuning
    variance = trials_sharpe_variance(sharpes, periods_per_year)
    deflated = {}
    for name in ("lstm", *TUNED_MODELS):
        if name not in backtests:
            continue
        returns = candle_returns(pool_equity(backtests[name]).to_numpy())
        d = deflated_sharpe_from_returns(returns, trials, variance)
        deflated[name] = {**d, "annualised_sharpe": float(np.sqrt(periods_per_year) * d["sharpe"])}
    return {
        "trial_id": trial_id,
        "looks": looks,
        "tuning_trials": tuning,
        "trials": trials,
        "trial_sharpes": sharpes,
        "deflated": deflated,
        "deflated_sharpe": deflated["lstm"],  # the untuned LSTM's, as before
        "deflated_sharpe_note": (
            "per-candle Sharpe of each LSTM's pooled equity against the best of "
            f"{trials} tries ({looks} looks at an overlapping test period, {tuning} tuning "
            "trials); dsr is the probability that the true Sharpe exceeds that luck"
        ),
        "annualised_sharpe": deflated["lstm"]["annualised_sharpe"],
    }
