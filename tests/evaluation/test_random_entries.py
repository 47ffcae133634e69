"""The random-entry nulls: what each draw keeps of the strategy, and what it leaves to chance."""

import numpy as np

from pipeline.backtest import BacktestConfig, run_backtest
from pipeline.evaluation.random_entries import _draw, random_entries


def test_same_candles_keeps_the_timing_and_runs_and_draws_only_the_sides() -> None:
    decisions = np.array([0, 1, 1, 1, 0, 0, -1, 0, 1, -1, 0], dtype=np.int8)
    rng = np.random.default_rng(0)
    draws = [_draw("same_candles", decisions, len(decisions), rng) for _ in range(200)]
    for d in draws:
        assert np.array_equal(d != 0, decisions != 0)  # the same candles decide
        assert len(set(d[1:4])) == 1 and d[8] == d[9]  # a run keeps one side
    firsts = {int(d[1]) for d in draws}
    assert firsts == {-1, 1}  # sides are drawn, both come up
    uniform = _draw("uniform", decisions, len(decisions), rng)
    assert np.count_nonzero(uniform) == np.count_nonzero(decisions)


def test_the_strategy_is_ranked_among_its_nulls_on_real_candles(sample_frames) -> None:
    frames = {
        m: sample_frames[m].iloc[:3000].reset_index(drop=True) for m in ("BTCUSDT", "ETHUSDT")
    }
    cfg = BacktestConfig(horizon=12, barrier_k=1.0)
    rng = np.random.default_rng(1)
    runs = {
        m: run_backtest(f, rng.choice([-1, 0, 1], size=len(f), p=[0.05, 0.9, 0.05]), cfg)
        for m, f in frames.items()
    }
    out = random_entries(frames, runs, cfg, draws=30, seed=0)
    assert out["decisions_per_market"] == {
        m: int(np.count_nonzero(r.decisions)) for m, r in runs.items()
    }
    for null in ("uniform", "same_candles"):
        spread = out[null]["sharpe"]
        assert spread["p2_5"] <= spread["median"] <= spread["p97_5"]
        assert 0 <= out[null]["sharpe_percentile"] <= 100
