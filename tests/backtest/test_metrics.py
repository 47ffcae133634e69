"""Metrics on constructed curves and trades, and pooling several markets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.backtest import BacktestConfig, buy_and_hold, pool_equity, pool_metrics, run_backtest
from pipeline.backtest.metrics import equity_metrics, trade_metrics

HOUR = 3_600_000
YEAR_HOURS = 8760


def rising(n: int, start: float = 100.0, stop: float = 200.0) -> pd.DataFrame:
    price = np.geomspace(start, stop, n + 1)
    return pd.DataFrame(
        {
            "timestamp": np.arange(n, dtype=np.int64) * HOUR,
            "open": price[:-1],
            "high": price[1:],
            "low": price[:-1],
            "close": price[1:],
            "volume": 1.0,
        }
    )


def test_monotone_rising_equity_has_no_drawdown() -> None:
    assert equity_metrics(np.linspace(1.0, 2.0, 100), 100 * HOUR, YEAR_HOURS)["max_drawdown"] == 0
    r = buy_and_hold(rising(500), BacktestConfig(fee=0.0))
    assert r.metrics["max_drawdown"] == 0.0
    falling = equity_metrics(np.array([1.0, 1.2, 0.9, 1.5]), 4 * HOUR, YEAR_HOURS)
    assert falling["max_drawdown"] == pytest.approx(0.25, abs=1e-15)  # 1.2 → 0.9


def test_sharpe_and_sortino_on_a_constructed_series() -> None:
    # Returns alternate +1 %, −0.5 % (the first against the starting 1.0): mean 0.25 %,
    # sample std 0.75 %·√(100/99); downside deviation √(½·0.5 %²) = 0.5 %/√2.
    r = np.tile([0.01, -0.005], 50)
    equity = np.cumprod(1 + r)
    m = equity_metrics(equity, 100 * HOUR, YEAR_HOURS)
    assert m["sharpe"] == pytest.approx(0.0025 / (0.0075 * math.sqrt(100 / 99)) * math.sqrt(8760))
    assert m["sortino"] == pytest.approx(0.0025 / (0.005 / math.sqrt(2)) * math.sqrt(8760))
    assert m["total_return"] == pytest.approx(equity[-1] - 1, abs=1e-15)


def test_annualised_return_over_one_year_equals_total_return() -> None:
    r = buy_and_hold(rising(YEAR_HOURS), BacktestConfig(fee=0.0, funding_rate=0.0))
    assert r.metrics["total_return"] == pytest.approx(1.0, rel=1e-12)
    assert r.metrics["annualised_return"] == pytest.approx(1.0, rel=1e-12)
    four_hourly = equity_metrics(np.array([1.0, 4.0]), 2 * YEAR_HOURS * HOUR, 2190)
    assert four_hourly["annualised_return"] == pytest.approx(1.0, rel=1e-12)  # 4× in 2 years


def test_profit_factor_is_gross_wins_over_gross_losses() -> None:
    m = trade_metrics(np.array([0.02, -0.01, 0.03, -0.02, 0.0]))
    assert m["profit_factor"] == pytest.approx(0.05 / 0.03, rel=1e-15)
    assert m["win_rate"] == 2 / 5  # a zero net return is not a win
    assert m["avg_win"] == pytest.approx(0.025)
    assert m["avg_loss"] == pytest.approx(-0.015)
    assert trade_metrics(np.array([0.01]))["profit_factor"] == math.inf
    assert math.isnan(trade_metrics(np.array([]))["win_rate"])


def test_replay_metrics_come_from_its_net_trades(sample_frames) -> None:
    frame = sample_frames["SOLUSDT"]
    d = np.random.default_rng(1).choice([-1, 0, 1], size=len(frame), p=[0.2, 0.6, 0.2])
    r = run_backtest(frame, d, BacktestConfig(horizon=2))
    net = r.trades["net_return"]
    assert r.metrics["profit_factor"] == pytest.approx(net[net > 0].sum() / -net[net < 0].sum())
    assert r.metrics["win_rate"] == pytest.approx((net > 0).mean())
    assert r.metrics["exposure"] == pytest.approx((r.position != 0).mean())


def test_pool_is_the_equal_weight_mean_and_pools_trades(sample_frames) -> None:
    cfg = BacktestConfig(horizon=2)
    rng = np.random.default_rng(2)
    results = {}
    for market in ("BTCUSDT", "XRPUSDT"):
        frame = sample_frames[market].iloc[:2000]
        results[market] = run_backtest(frame, rng.choice([-1, 0, 1], size=len(frame)), cfg)
    # A market that starts later holds idle capital (1.0) until its first candle.
    late = sample_frames["ETHUSDT"].iloc[1000:2000]
    results["ETHUSDT"] = run_backtest(late, rng.choice([-1, 0, 1], size=len(late)), cfg)
    eq = pool_equity(results)
    assert len(eq) == 2000
    expected_end = np.mean([r.equity.iloc[-1] for r in results.values()])
    assert eq.iloc[-1] == pytest.approx(expected_end, rel=1e-12)
    assert eq.iloc[0] == pytest.approx((results["BTCUSDT"].equity.iloc[0] + 1 + 1) / 3)
    m = pool_metrics(results)
    all_net = pd.concat([r.trades["net_return"] for r in results.values()])
    assert m["trades"] == len(all_net)
    assert m["win_rate"] == pytest.approx((all_net > 0).mean())
    assert m["total_return"] == pytest.approx(expected_end - 1, rel=1e-12)
    assert m["markets"] == 3


def test_no_ratio_is_computed_through_a_ruin() -> None:
    """A curve that reached zero has no Sharpe or Sortino, however its returns average: a
    leveraged long that doubles then is wiped out would otherwise show a positive one."""
    equity = np.array([1.5, 2.0, 2.6, 3.4, 0.0, 0.0])
    m = equity_metrics(equity, 6 * 3_600_000, 8760)
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"])
    assert m["total_return"] == -1.0 and m["max_drawdown"] == 1.0
