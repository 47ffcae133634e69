"""`target_weights`: each rule against a hand-computed example, and the caps as properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.weights import target_weights
from tests.portfolio.strategies import configs, one_decision

NAN = float("nan")
BIG = 100.0  # a market cap that never binds


def weights(scores, vol, **settings_) -> np.ndarray:
    return target_weights(
        np.array(scores, float), np.array(vol, float), PortfolioConfig(**settings_)
    )


def test_inverse_vol_and_conviction_sizing() -> None:
    # w = s × (0.4 / vol) / 3
    w = weights([1.0, 0.5, -1.0], [0.4, 0.8, 0.2], selection="all", market_cap=BIG)
    np.testing.assert_allclose(w, [1 / 3, 0.5 * 0.5 / 3, -2 / 3], rtol=1e-15)


def test_sign_sizing_without_conviction() -> None:
    w = weights([1.0, 0.5, -0.1], [0.4, 0.8, 0.2], conviction=False, market_cap=BIG)
    np.testing.assert_allclose(w, [1 / 3, 0.5 / 3, -2 / 3], rtol=1e-15)


def test_markets_sets_the_sleeves_and_target_vol_scales() -> None:
    w = weights([1.0, -0.5, 0.0], [0.4, 0.4, 0.4], markets=5, target_vol=0.2, market_cap=BIG)
    np.testing.assert_allclose(w, [0.1, -0.05, 0.0], rtol=1e-15)


def test_neutral_demeans_across_markets_with_a_score() -> None:
    # Valid: 0.8, 0.2, −0.4 (mean 0.2); the NaN score and the NaN-vol market do not count.
    w = weights([0.8, 0.2, -0.4, NAN, 1.0], [0.4, 0.4, 0.4, 0.4, NAN], neutral=True)
    np.testing.assert_allclose(w, [0.6 / 5, 0.0, -0.6 / 5, 0.0, 0.0], atol=1e-15)


def test_neutral_lone_market_demeans_to_nothing() -> None:
    assert weights([0.7, NAN], [0.4, 0.4], neutral=True).tolist() == [0.0, 0.0]


def test_neutral_before_selection() -> None:
    # Demeaned: 0.5, −0.1, −0.4; the threshold 0.3 is applied to those.
    w = weights([0.9, 0.3, 0.0], [0.4, 0.4, 0.4], neutral=True, threshold=0.3)
    np.testing.assert_allclose(w, [0.5 / 3, 0.0, -0.4 / 3], atol=1e-15)


def test_threshold_keeps_scores_at_or_above_it() -> None:
    w = weights([0.6, -0.5, 0.49, -0.2], [0.4] * 4, threshold=0.5)
    np.testing.assert_allclose(w, [0.6 / 4, -0.5 / 4, 0.0, 0.0], rtol=1e-15)


def test_all_takes_every_non_zero_score() -> None:
    w = weights([0.01, 0.0, -0.01], [0.4] * 3, selection="all", threshold=0.9)
    np.testing.assert_allclose(w, [0.01 / 3, 0.0, -0.01 / 3], rtol=1e-15)


def test_top_k_both_sides() -> None:
    scores = [0.9, 0.1, -0.3, 0.5, -0.8, NAN]
    w = weights(scores, [0.4] * 6, selection="top_k", top_k=2, threshold=0.95)
    np.testing.assert_allclose(w, [0.9 / 6, 0.0, -0.3 / 6, 0.5 / 6, -0.8 / 6, 0.0], rtol=1e-15)


def test_top_k_takes_no_long_with_a_negative_score_nor_a_short_with_a_positive_one() -> None:
    w = weights([0.9, 0.5, 0.2], [0.4] * 3, selection="top_k", top_k=1)
    np.testing.assert_allclose(w, [0.9 / 3, 0.0, 0.0], rtol=1e-15)
    w = weights([-0.9, -0.5], [0.4] * 2, selection="top_k", top_k=2)
    np.testing.assert_allclose(w, [-0.9 / 2, -0.5 / 2], rtol=1e-15)


def test_top_k_with_neutral_ranks_demeaned_scores() -> None:
    # Demeaned: 0.9 − 1.6/3, 0.5 − 1.6/3 (< 0), 0.2 − 1.6/3.
    w = weights([0.9, 0.5, 0.2], [0.4] * 3, selection="top_k", top_k=1, neutral=True)
    mean = (0.9 + 0.5 + 0.2) / 3
    np.testing.assert_allclose(w, [(0.9 - mean) / 3, 0.0, (0.2 - mean) / 3], atol=1e-15)


def test_top_k_ties_go_to_the_lower_column_and_invalid_markets_are_not_ranked() -> None:
    w = weights([0.5, 0.5, -0.5, -0.5], [0.4] * 4, selection="top_k", top_k=1)
    assert (w != 0).tolist() == [True, False, True, False]
    w = weights([1.0, 0.5, -1.0], [NAN, 0.4, 0.0], selection="top_k", top_k=1)
    np.testing.assert_allclose(w, [0.0, 0.5 / 3, 0.0], rtol=1e-15)


def test_market_cap_clips_each_weight() -> None:
    # Raw ±4.0 (vol 0.1, one sleeve); the default cap is 2 / N = 2.
    assert weights([1.0, -1.0], [0.1, 0.1], markets=1).tolist() == [2.0, -2.0]
    assert weights([1.0, -1.0], [0.1, 0.1], markets=1, market_cap=0.5).tolist() == [0.5, -0.5]


def test_market_cap_comes_before_the_gross_cap() -> None:
    # Raw [4, 1] → capped [1, 1] → gross 2 > 1.5 → [0.75, 0.75].
    w = weights([1.0, 1.0], [0.1, 0.4], markets=1, market_cap=1.0, gross_cap=1.5)
    np.testing.assert_allclose(w, [0.75, 0.75], rtol=1e-15)


def test_gross_cap_scales_every_weight() -> None:
    w = weights([1.0, -1.0, 1.0], [0.4] * 3, gross_cap=0.5)  # gross 1 → 0.5
    np.testing.assert_allclose(w, [1 / 6, -1 / 6, 1 / 6], rtol=1e-15)
    w = weights([1.0, -1.0, 1.0], [0.4] * 3, gross_cap=1.5)  # under the cap: untouched
    np.testing.assert_allclose(w, [1 / 3, -1 / 3, 1 / 3], rtol=1e-15)


def test_net_cap_scales_the_side_in_excess_only() -> None:
    vol, one = [0.4] * 3, {"markets": 1, "market_cap": BIG}  # w = s
    # Net 0.4 > 0.1: longs × (0.1 + 0.1) / 0.5 = 0.4.
    np.testing.assert_allclose(
        weights([0.3, 0.2, -0.1], vol, net_cap=0.1, **one), [0.12, 0.08, -0.1], rtol=1e-14
    )
    np.testing.assert_allclose(
        weights([-0.3, -0.2, 0.1], vol, net_cap=0.1, **one), [-0.12, -0.08, 0.1], rtol=1e-14
    )
    np.testing.assert_allclose(
        weights([0.3, 0.2, -0.1], vol, net_cap=0.0, **one), [0.06, 0.04, -0.1], rtol=1e-14
    )
    np.testing.assert_allclose(
        weights([0.3, 0.2, -0.1], vol, net_cap=0.5, **one), [0.3, 0.2, -0.1], rtol=1e-15
    )


def test_net_cap_comes_after_the_gross_cap() -> None:
    # Gross 0.6 → ×0.5: [0.15, 0.1, −0.05]; net 0.2 → longs × (0.1 + 0.05) / 0.25.
    w = weights([0.3, 0.2, -0.1], [0.4] * 3, markets=1, market_cap=BIG, gross_cap=0.3, net_cap=0.1)
    np.testing.assert_allclose(w, [0.09, 0.06, -0.05], rtol=1e-14)


def test_long_only_drops_shorts_before_the_caps() -> None:
    w = weights([0.5, -0.5], [0.4, 0.4], markets=1, long_only=True)
    assert w.tolist() == [0.5, 0.0]
    # The short does not use up the gross cap: [0.5, 0] → 0.2, not [0.1, −0.1] → 0.1.
    w = weights([0.5, -0.5], [0.4, 0.4], markets=1, long_only=True, gross_cap=0.2)
    np.testing.assert_allclose(w, [0.2, 0.0], rtol=1e-15)


def test_long_only_with_zero_net_cap_holds_nothing() -> None:
    assert weights([0.5, 0.2], [0.4, 0.4], long_only=True, net_cap=0.0).tolist() == [0.0, 0.0]


def test_invalid_inputs_give_zero_weight() -> None:
    w = weights([NAN, 0.5, 0.5, 0.5, 0.5, 0.5], [0.4, NAN, 0.0, np.inf, -0.3, 0.4])
    np.testing.assert_allclose(w, [0, 0, 0, 0, 0, 0.5 / 6], rtol=1e-15)


def test_no_negative_zero() -> None:
    w = weights([-0.0, -0.5, NAN], [0.4, 0.4, 0.4], long_only=True)
    assert w.tolist() == [0.0, 0.0, 0.0] and not np.signbit(w).any()


def test_empty_and_bad_shapes() -> None:
    assert target_weights(np.zeros(0), np.zeros(0), PortfolioConfig()).shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        weights([0.5], [0.4, 0.4])
    with pytest.raises(ValueError, match="1-D"):
        weights([[0.5]], [[0.4]])


@pytest.mark.parametrize("bad", [1.5, -1.01, np.inf, -np.inf])
def test_scores_outside_the_unit_range_raise(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        weights([0.5, bad], [0.4, 0.4])


@settings(max_examples=600, deadline=None, derandomize=True)
@given(one_decision(), configs)
def test_caps_hold_and_invalid_markets_hold_nothing(decision, cfg: PortfolioConfig) -> None:
    scores, vol = decision
    w = target_weights(scores, vol, cfg)
    assert w.shape == scores.shape and np.isfinite(w).all()
    assert (np.abs(w) <= cfg.cap_per_market(len(w))).all()
    if cfg.gross_cap is not None:
        assert np.abs(w).sum() <= cfg.gross_cap + 1e-12
    if cfg.net_cap is not None:
        assert abs(w.sum()) <= cfg.net_cap + 1e-12
    if cfg.long_only:
        assert (w >= 0).all()
    invalid = ~(np.isfinite(scores) & np.isfinite(vol) & (vol > 0))
    assert (w[invalid] == 0).all()
    assert (w[np.isnan(scores)] == 0).all()
    if not cfg.neutral:  # a position never takes the side opposite to its score
        assert (w * np.nan_to_num(scores) >= 0).all()


def test_equal_sizing_splits_the_capital_in_sleeves_whatever_the_volatility():
    cfg = PortfolioConfig(sizing="equal", selection="all", conviction=False, long_only=True)
    w = target_weights(np.array([1.0, 0.5, -1.0, np.nan]), np.array([0.2, 0.9, 0.5, 0.4]), cfg)
    np.testing.assert_array_equal(w, [0.25, 0.25, 0.0, 0.0])


def test_an_unknown_sizing_is_refused():
    with pytest.raises(ValueError, match="sizing must be one of inverse_vol, equal"):
        PortfolioConfig(sizing="kelly")
