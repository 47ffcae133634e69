"""Performance figures from an equity curve and a list of net trade returns.

Definitions (so a reader of a report knows exactly what a number claims):
- win_rate: share of trades whose net return after every cost is > 0; avg_win / avg_loss:
  mean net return of the winners / of the losers (net < 0, so avg_loss is negative);
  profit_factor: sum of winning net returns / |sum of losing net returns|.
- per-candle returns are taken from an equity that starts at 1.0 before the first candle,
  so the first candle's return is equity[0] − 1 (0 for decision strategies, which cannot hold
  the first candle; the first candle's move for buy-and-hold);
- sharpe = mean / std (ddof 1) × √periods_per_year; sortino = mean / downside deviation
  (√ mean(min(r, 0)²) over all candles) × √periods_per_year; no risk-free rate;
- annualised_return: final equity ** (1 / years) − 1, years from the first open to the last
  close (gaps count as time, since capital is tied up through them);
- max_drawdown: largest fall from a running peak (the start, 1.0, counts as a peak), as a
  positive fraction;
- a curve that reached zero (the account ruined or liquidated) has no Sharpe and no Sortino
  (NaN): no ratio is computed through a ruin, whose returns after it mean nothing.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.backtest.config import YEAR_MS


def _ratio(mean: float, spread: float, periods_per_year: float) -> float:
    if spread > 0:
        return mean / spread * math.sqrt(periods_per_year)
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


def _annualised(final: float, years: float) -> float:
    if final <= 0:
        return -1.0
    exponent = math.log(final) / years
    return math.expm1(exponent) if exponent < 700 else math.inf  # short spans explode


def candle_returns(equity: np.ndarray) -> np.ndarray:
    """Returns per candle from an equity curve that starts at 1.0 before its first value."""
    out = np.empty(len(equity))
    if len(equity) == 0:
        return out
    out[0] = equity[0] - 1.0
    prev = equity[:-1]
    if prev.min(initial=1.0) > 0:
        np.divide(equity[1:], prev, out=out[1:])
        out[1:] -= 1.0
    else:  # ruined: no return after equity reaches 0
        out[1:] = 0.0
        live = prev > 0
        out[1:][live] = equity[1:][live] / prev[live] - 1.0
    return out


def equity_metrics(equity: np.ndarray, span_ms: int, periods_per_year: float) -> dict[str, float]:
    """Return, risk-adjusted return and drawdown of one equity curve (see module docstring)."""
    if len(equity) == 0:
        raise ValueError("an empty equity curve has no metrics")
    r = candle_returns(equity)
    final = float(equity[-1])
    years = span_ms / YEAR_MS
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    spread = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    mean = float(np.mean(r))
    ruined = float(np.min(equity)) <= 0.0
    return {
        "total_return": final - 1.0,
        "annualised_return": _annualised(final, years),
        "sharpe": math.nan if ruined else _ratio(mean, spread, periods_per_year),
        "sortino": math.nan if ruined else _ratio(mean, downside, periods_per_year),
        "max_drawdown": float(np.max(1.0 - equity / peak)),
    }


def trade_metrics(net: np.ndarray) -> dict[str, float]:
    """Count, win rate (net > 0), average win and loss, profit factor of net trade returns."""
    wins, losses = net[net > 0], net[net < 0]
    won, lost = float(wins.sum()), float(-losses.sum())
    profit_factor = won / lost if lost > 0 else (math.inf if won > 0 else math.nan)
    return {
        "trades": len(net),
        "win_rate": len(wins) / len(net) if len(net) else math.nan,
        "avg_win": float(wins.mean()) if len(wins) else math.nan,
        "avg_loss": float(losses.mean()) if len(losses) else math.nan,
        "profit_factor": profit_factor,
    }
