"""A portfolio walk-forward's look at its test period: recorded in the trials ledger, deflated.

Each evaluation appends one row (its config, its test period, every strategy's figures)
before its figures are reported. The report then states how many looks at an overlapping test
period the ledger holds (portfolio and barrier walk-forwards alike), plus every tuning trial (each
was a try on these candles), and the deflated Sharpe ratio of each scorer's
per-candle portfolio returns given that many tries (`pipeline.stats.deflated_sharpe`).
Sharpe ratios are stored annualised, so looks at different timeframes share one scale.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.metrics import candle_returns
from pipeline.evaluation.window_search import TUNING_KIND
from pipeline.stats import deflated_sharpe_from_returns, trials_sharpe_variance
from pipeline.store import trials as ledger
from pipeline.store.database import Database

KIND = "portfolio_walk_forward"
# Looks at a test period: this kind and the barrier walk-forwards, on overlapping periods.
LOOK_KINDS = (KIND, "walk_forward")
DEFLATED = ("lstm", "gbm", "logistic", "blend", "trend")


def _sharpe(figures: dict[str, Any]) -> float | None:
    value = figures.get("sharpe")
    return float(value) if value is not None and math.isfinite(float(value)) else None


def record_portfolio_look(
    db: Database, report: dict[str, Any], results: dict[str, Any], periods_per_year: float
) -> dict[str, Any]:
    """Append this look; return the trial count and each scorer's deflated Sharpe."""
    config = {**report["config"], "target": report["target"]}
    start = pd.Timestamp(config["test_start"], tz="UTC")
    end = pd.Timestamp(config["test_end"], tz="UTC")
    pooled = report["pooled"]
    figures = {
        "sharpe": _sharpe(pooled["lstm"]),
        "total_return": pooled["lstm"]["total_return"],
        "default_strategy": report["default_strategy"],
        "strategies": pooled,
        "sharpe_basis": "annualised from per-candle returns of the portfolio's equity",
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
        by_kind = {
            kind: ledger.count_trials(conn, kind=kind, period_start=start, period_end=end)
            for kind in LOOK_KINDS
        }
        tuning = ledger.count_trials(conn, kind=TUNING_KIND)
        sharpes = [
            sharpe
            for kind in LOOK_KINDS
            for sharpe in ledger.trial_sharpes(conn, kind=kind, period_start=start, period_end=end)
        ]
        sharpes += ledger.trial_sharpes(conn, kind=TUNING_KIND)
    looks = sum(by_kind.values())
    trials = looks + tuning
    variance = trials_sharpe_variance(sharpes, periods_per_year)
    deflated = {}
    for name in DEFLATED:
        returns = candle_returns(results[name].equity.to_numpy())
        if results[name].metrics.get("liquidated") or np.std(returns) == 0:
            deflated[name] = None  # no ratio through a curve that reached zero or stood still
            continue
        d = deflated_sharpe_from_returns(returns, trials, variance)
        deflated[name] = {**d, "annualised_sharpe": float(np.sqrt(periods_per_year) * d["sharpe"])}
    return {
        "trial_id": trial_id,
        "looks": looks,
        "looks_by_kind": by_kind,
        "tuning_trials": tuning,
        "trials": trials,
        "deflated": deflated,
        "note": (
            f"per-candle Sharpe of each portfolio against the best of {trials} tries ({looks} "
            f"walk-forward looks at an overlapping test period, {tuning} tuning trials); dsr is "
            "the probability that the true Sharpe exceeds that luck"
        ),
    }
