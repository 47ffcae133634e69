"""Rule scores from candles alone: the trend rule and cross-sectional momentum."""

import numpy as np
import pandas as pd

from pipeline.data.timeframes import candles_in
from pipeline.portfolio.rules import momentum_scores, trend_scores


def test_lookbacks_in_days_become_candles_of_the_timeframe():
    assert [candles_in(20, tf) for tf in ("1d", "4h", "1h")] == [20, 120, 480]


def test_the_trend_score_is_the_mean_sign_of_the_lookback_returns():
    close = np.array([10.0, 11.0, 9.0, 12.0, 8.0, 13.0])
    score = trend_scores(close, "1d", lookback_days=(1, 2, 4))
    # t=4: 8/12 down, 8/9 down, 8/10 down → −1; t=5: 13/8, 13/12, 13/9 up → +1
    np.testing.assert_array_equal(score[4:], [-1.0, 1.0])
    assert np.isnan(score[:4]).all()  # the longest lookback is not filled yet
    # t=3 with lookbacks 1 and 2: 12/9 up, 12/11 up
    assert trend_scores(close, "1d", lookback_days=(1, 2))[3] == 1.0


def test_rule_scores_at_t_do_not_change_when_later_candles_are_added():
    rng = np.random.default_rng(3)
    close = np.exp(np.cumsum(rng.normal(0, 0.03, size=(400, 3)), axis=0))
    full_t, full_m = trend_scores(close, "1d"), momentum_scores(close, "1d")
    cut_t, cut_m = trend_scores(close[:250], "1d"), momentum_scores(close[:250], "1d")
    np.testing.assert_array_equal(full_t[:250], cut_t)
    np.testing.assert_allclose(full_m[:250], cut_m, rtol=0, atol=1e-12)


def test_momentum_is_tanh_of_the_risk_adjusted_return_and_keeps_the_ranks():
    rng = np.random.default_rng(4)
    close = np.exp(np.cumsum(rng.normal(0, 0.02, size=(200, 4)), axis=0))
    score = momentum_scores(close, "1d", days=30)
    log_close = np.log(close)
    one = pd.DataFrame(np.diff(log_close, axis=0, prepend=np.nan))
    sigma = one.rolling(30).std().to_numpy()
    z = (log_close[30:] - log_close[:-30]) / (sigma[30:] * np.sqrt(30))
    np.testing.assert_allclose(score[30:], np.tanh(z), rtol=1e-10)
    assert np.isnan(score[:30]).all()
    assert (np.abs(score[30:]) <= 1).all()
