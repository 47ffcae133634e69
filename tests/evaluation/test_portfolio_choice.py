"""Choosing a portfolio operating point on one half of validation; the default rule."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.default_choice import choose_default
from pipeline.evaluation.portfolio_choice import (
    PortfolioChoice,
    choose_portfolio,
    halves,
    threshold_for,
)
from pipeline.evaluation.portfolio_scores import to_panel
from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.scores import ScoreScale, blend, score_from_probability


def test_the_threshold_keeps_the_given_share_of_scores_by_size():
    scores = np.array([[0.1, -0.9], [0.5, np.nan], [-0.3, 0.7]])
    assert threshold_for(scores, 1.0) == 0.0
    kept = np.abs(scores[np.isfinite(scores)]) >= threshold_for(scores, 0.4)
    assert kept.sum() == 2  # 40 % of five scores: the two largest
    with pytest.raises(ValueError, match="coverage must be in"):
        threshold_for(scores, 0.0)


def test_the_best_sharpe_among_options_with_enough_fills_is_kept():
    sharpe = {1.0: 0.2, 0.5: 1.5, 0.35: 0.9, 0.2: 3.0}
    fills = {1.0: 50, 0.5: 30, 0.35: 20, 0.2: 3}  # 0.2 has too few fills to count

    def replay(scores, cfg):
        coverage = next(c for c in sharpe if math.isclose(cfg.threshold, threshold_for(s, c)))
        return {"sharpe": sharpe[coverage], "trades": fills[coverage]}

    s = np.random.default_rng(0).uniform(-1, 1, size=(40, 3))
    chosen = choose_portfolio(s, PortfolioConfig(), replay, PortfolioChoice(min_trades=10))
    assert chosen.coverage == 0.5 and chosen.enough_trades
    assert chosen.config.selection == "threshold"
    assert chosen.config.threshold == threshold_for(s, 0.5)
    assert [o["chosen"] for o in chosen.options] == [False, True, False, False]


def test_without_enough_fills_the_option_with_the_most_is_kept_and_said():
    s = np.random.default_rng(1).uniform(-1, 1, size=(10, 2))
    chosen = choose_portfolio(
        s,
        PortfolioConfig(),
        lambda scores, cfg: {"sharpe": 1.0, "trades": 5 if cfg.threshold == 0 else 1},
        PortfolioChoice(min_trades=10),
    )
    assert chosen.coverage == 1.0 and not chosen.enough_trades


def test_validation_is_cut_in_two_halves_in_time():
    choose, judge = halves(np.arange(10, 21))
    assert choose.tolist() == list(range(10, 15)) and judge.tolist() == list(range(15, 21))
    with pytest.raises(ValueError, match="too few to halve"):
        halves(np.arange(3))


def test_the_default_is_the_best_median_judged_sharpe_and_liquidation_counts_as_worst():
    judged = {
        "lstm": [{"sharpe": 2.0, "turnover_per_year": 5}, {"sharpe": -1.0}, {"sharpe": 0.1}],
        "gbm": [{"sharpe": 0.5, "turnover_per_year": 9}] * 3,
        "blend": [{"sharpe": 9.0, "liquidated": True}, {"sharpe": 0.6}, {"sharpe": None}],
    }
    name, rule = choose_default(judged)
    assert name == "gbm"
    assert rule["candidates"]["lstm"]["median_sharpe"] == 0.1
    assert rule["candidates"]["blend"]["median_sharpe"] == -math.inf
    tie = {
        "a": [{"sharpe": 1.0, "turnover_per_year": 30}],
        "b": [{"sharpe": 1.0, "turnover_per_year": 3}],
    }
    assert choose_default(tie)[0] == "b"


def test_scores_are_normalised_by_validation_and_placed_on_the_panel():
    p = np.array([0.5, 0.6, 0.45, 0.7, 0.52])
    s = score_from_probability(p)
    scale = ScoreScale.fit(s)
    assert scale.scale == pytest.approx(np.quantile(np.abs(s), 0.9))
    assert np.abs(scale.apply(s)).max() == 1.0
    ms = np.array([0, 3600_000, 7200_000], dtype="int64")
    panel = to_panel(
        np.array(["B", "A"]),
        pd.to_datetime([3600_000, 0], unit="ms", utc=True),
        np.array([0.3, -0.2]),
        ["A", "B"],
        ms,
    )
    np.testing.assert_array_equal(panel[0], [-0.2, np.nan])
    np.testing.assert_array_equal(panel[1], [np.nan, 0.3])
    with pytest.raises(ValueError, match="not on the panel"):
        to_panel(np.array(["A"]), pd.to_datetime([1], unit="ms", utc=True), np.ones(1), ["A"], ms)
    np.testing.assert_array_equal(
        blend(np.array([1.0, np.nan]), np.array([0.0, 1.0])), [0.5, np.nan]
    )
