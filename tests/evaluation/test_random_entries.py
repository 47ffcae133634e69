"""The random-entry nulls: what each draw keeps of the strategy, and what it leaves to chance."""

import numpy as np

from pipeline.backtest import BacktestConfig, run_backtest
from pipeline.evaluation.random_entries import _draw, random_entries
from pipeline.features.labels import LabelRule, market_outcomes


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


def test_a_strategy_that_knows_the_outcome_tops_both_nulls(sample_frames) -> None:
    """Sides taken from each candle's own barrier outcome (foresight) must beat every draw
    that keeps its candles and guesses the sides; a blind copy of a null must not."""
    frames = {
        m: sample_frames[m].iloc[:3000].reset_index(drop=True) for m in ("BTCUSDT", "ETHUSDT")
    }
    rule = LabelRule(horizon=12, barrier_k=1.0)
    cfg = BacktestConfig(horizon=12, barrier_k=1.0, funding_rate=0.0)
    rng = np.random.default_rng(1)
    knowing, blind = {}, {}
    for market, frame in frames.items():
        outcome = market_outcomes(frame, "1h", rule).label
        at = rng.random(len(frame)) < 0.03
        foresight = np.where(outcome == 1.0, 1, np.where(outcome == 0.0, -1, 0)).astype(np.int8)
        knowing[market] = run_backtest(frame, np.where(at, foresight, 0), cfg)
        blind[market] = run_backtest(
            frame, _draw("same_candles", at.astype(np.int8), len(frame), rng), cfg
        )
    out = random_entries(frames, knowing, cfg, draws=50, seed=0)
    assert out["decisions_per_market"] == {
        m: int(np.count_nonzero(r.decisions)) for m, r in knowing.items()
    }
    assert out["same_candles"]["sharpe_percentile"] == 100.0
    assert out["uniform"]["sharpe_percentile"] == 100.0
    guessed = random_entries(frames, blind, cfg, draws=50, seed=0)
    assert guessed["same_candles"]["sharpe_percentile"] < 100.0
