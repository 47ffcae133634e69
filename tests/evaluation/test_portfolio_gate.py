"""The portfolio gate judges money on validation's judging half, beside the trend rule."""

from __future__ import annotations

import math

from pipeline.evaluation.portfolio_gate import PortfolioGateConfig, check_portfolio_gate

GOOD = {"sharpe": 1.4, "total_return": 0.05, "max_drawdown": 0.08, "trades": 40}


def judged(candidate: dict, trend_sharpe: float = 0.5) -> dict:
    return {"candidate": candidate, "trend": {"sharpe": trend_sharpe, "trades": 300}}


def test_money_above_the_floor_and_the_trend_rule_passes() -> None:
    verdict = check_portfolio_gate(judged(GOOD), None, fit={"scorer": "gbm", "gap": 0.4})
    assert verdict.passed and verdict.reasons == []  # boosting's gap is reported, not judged


def test_every_failed_bound_is_listed() -> None:
    bad = {"sharpe": 0.3, "total_return": -0.01, "max_drawdown": 0.4, "trades": 3}
    verdict = check_portfolio_gate(
        judged(bad, trend_sharpe=0.9), {"sharpe": 2.0}, fit={"scorer": "lstm", "gap": 0.2}
    )
    assert not verdict.passed
    text = "; ".join(verdict.reasons)
    for words in (
        "≤ the trend rule's 0.90",
        "drawdown 40.0% > 25.0%",
        "3 fills < 10",
        "gap +20.0% > 15%",
        "below production's 2.00",
    ):
        assert words in text


def test_a_liquidated_or_undefined_candidate_never_passes() -> None:
    ruined = {**GOOD, "sharpe": math.nan, "liquidated": True}
    verdict = check_portfolio_gate(judged(ruined), None)
    assert not verdict.passed
    assert "liquidated on the judging half" in verdict.reasons
    assert "net Sharpe undefined ≤ 0.00" in verdict.reasons


def test_bounds_come_from_the_config() -> None:
    lenient = PortfolioGateConfig(min_sharpe=-5, beat_trend=False, max_drawdown=1, min_trades=0)
    weak = {"sharpe": -1.0, "total_return": -0.1, "max_drawdown": 0.5, "trades": 0}
    assert check_portfolio_gate(judged(weak, 3.0), None, lenient).passed
