"""Replay of one market's decisions, candle by candle, with real costs.

`decisions[t]` ∈ {-1, 0, +1} is the decision known at candle t's close. The rules:

- Entry at the NEXT candle's open (t + 1), never at t's close: no look-ahead. The decision
  of the last candle has no candle to act on and is ignored; a decision array longer than
  the candles is refused.
- Hold H candles: exit at the open of candle t + 1 + H.
- A same-side decision while in a position re-arms the hold from that decision (exit moves to
  the open of t' + 1 + H); the position is kept, no fee is paid.
- An opposite-side decision exits at the next open and opens the opposite side at that same
  open (two fills, both charged).
- A flat decision (0) does not close an open position early.
- Gaps: a decision acts only on the candle that directly follows it on the timeframe's grid.
  A position is never carried across a missing candle: it is closed at the last close before
  the gap, and the decision taken at that close is void (its next candle is missing).
- The last open position is closed at the last candle's close.
- Costs (see `pipeline.backtest.settle`): taker fee on entry and exit notional, slippage
  adverse on both fills, funding per candle held (rate per 8h × candle hours / 8, paid by
  longs and received by shorts when positive), all scaled by position_size × leverage on
  equity; equity compounds trade by trade and is marked to market at each close.

Buy-and-hold is not expressible as decisions under these rules (it would enter one candle
late), so `buy_and_hold` builds its one trade directly: first open to last close, one fee
each side, held through any gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.metrics import equity_metrics, trade_metrics
from pipeline.backtest.schedule import run_starts, schedule
from pipeline.backtest.settle import Settlement, settle


@dataclass(frozen=True)
class BacktestResult:
    """One market's replay: its trades, equity and position per candle, and its figures.

    Trade prices are the quoted candle prices (open or close); slippage lives in `costs`.
    Returns are fractions of the equity at the trade's entry.
    """

    trades: pd.DataFrame
    equity: pd.Series
    position: pd.Series
    metrics: dict[str, Any]
    config: BacktestConfig


def _arrays(candles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(candles) == 0:
        raise ValueError("no candles to replay")
    ts = candles["timestamp"].to_numpy(dtype=np.int64)
    opens = candles["open"].to_numpy(dtype=np.float64)
    closes = candles["close"].to_numpy(dtype=np.float64)
    return ts, opens, closes


def _utc(ms: np.ndarray) -> pd.DatetimeIndex:
    """Epoch ms as UTC datetimes (a view cast: pd.to_datetime costs 40x more here)."""
    return pd.DatetimeIndex((ms * 1_000_000).view("datetime64[ns]"), tz="UTC")


def _decision_array(decisions: np.ndarray, n: int) -> np.ndarray:
    d = np.asarray(decisions)
    if d.ndim != 1 or len(d) != n:
        raise ValueError(
            f"need exactly one decision per candle ({n}), got shape {d.shape}: decisions "
            "after the last candle cannot exist"
        )
    if not ((d == 0) | (d == 1) | (d == -1)).all():
        raise ValueError("decisions must be -1, 0 or +1")
    return d.astype(np.int8, copy=False)


def _result(
    ts: np.ndarray,
    position: np.ndarray,
    done: Settlement,
    coverage: float,
    cfg: BacktestConfig,
) -> BacktestResult:
    step = cfg.step_ms
    index = _utc(ts).rename("timestamp")
    trades = pd.DataFrame(
        {
            "entry_time": _utc(ts[done.starts]),
            # Exits are at the open of the candle after the last one held, or at the last
            # held candle's close: both are that candle's open time + one step.
            "exit_time": _utc(ts[done.ends] + step),
            "side": done.sides.astype(np.int8),
            "entry_price": done.entry_price,
            "exit_price": done.exit_price,
            "candles": done.candles_held,
            "gross_return": done.gross,
            "costs": done.costs,
            "net_return": done.net,
        }
    )
    metrics: dict[str, Any] = trade_metrics(done.net)
    metrics["coverage"] = coverage
    metrics.update(equity_metrics(done.equity, int(ts[-1] + step - ts[0]), cfg.periods_per_year))
    metrics["exposure"] = float(np.count_nonzero(position)) / len(position)
    return BacktestResult(
        trades=trades,
        equity=pd.Series(done.equity, index=index, name="equity"),
        position=pd.Series(position, index=index, name="position"),
        metrics=metrics,
        config=cfg,
    )


def run_backtest(
    candles: pd.DataFrame, decisions: np.ndarray, cfg: BacktestConfig | None = None
) -> BacktestResult:
    """Replay one market's decisions under the rules in this module's docstring."""
    cfg = cfg or BacktestConfig()
    ts, opens, closes = _arrays(candles)
    d = _decision_array(decisions, len(ts))
    plan = schedule(d, ts, cfg.step_ms, cfg.horizon)
    done = settle(
        opens,
        closes,
        ts,
        plan.starts,
        plan.ends,
        plan.exit_at_close,
        plan.position[plan.starts],
        cfg,
    )
    position = plan.position
    if done.ruined_after < len(ts) - 1:
        position = position.copy()
        position[done.ruined_after + 1 :] = 0
    return _result(ts, position, done, float(np.count_nonzero(d)) / len(d), cfg)


def buy_and_hold(candles: pd.DataFrame, cfg: BacktestConfig | None = None) -> BacktestResult:
    """One long trade from the first open to the last close; fees and slippage once a side."""
    cfg = cfg or BacktestConfig()
    ts, opens, closes = _arrays(candles)
    run_starts(ts, cfg.step_ms)  # same timestamp checks as a replay
    one = np.zeros(1, dtype=np.int64)
    done = settle(
        opens, closes, ts, one, one + len(ts) - 1, np.ones(1, dtype=bool), np.ones(1, np.int8), cfg
    )
    return _result(ts, np.ones(len(ts), dtype=np.int8), done, 1.0, cfg)


def always_long_decisions(n: int) -> np.ndarray:
    """Long at every close: under re-arm this is one long from the second open to the end."""
    return np.ones(n, dtype=np.int8)
