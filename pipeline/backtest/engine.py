"""Replay of one market's decisions, candle by candle, with real costs, exiting as the label does.

`decisions[t]` ∈ {-1, 0, +1} is the decision known at candle t's close. The rules:

- Entry at the NEXT candle's open (t + 1), never at t's close: no look-ahead. The decision
  of the last candle has no candle to act on and is ignored; a decision array longer than
  the candles is refused.
- Exits by the label's rule (`pipeline.features.barriers`): with barriers (`barrier_k`), a
  take-profit and a stop at k × σ_t × √T from the entry, checked on each held candle's high
  and low; both inside one candle means the stop, first; a stop fills at its level or a worse
  open, a take-profit at its level. Without barriers, or if neither is touched, the time
  limit: out at the open after T = `horizon` candles held.
- A position is held while the signal keeps its side: a same-side decision re-arms the trade
  from the next open (barriers re-based on that open, the clock restarted); no fee is paid.
- An opposite-side decision exits at the next open and opens the opposite side at that same
  open (two fills, both charged).
- A flat decision (0) does not close an open position early.
- Gaps: a decision acts only on the candle that directly follows it on the timeframe's grid.
  A position is never carried across a missing candle: it is closed at the last close before
  the gap, and the decision taken at that close is void (its next candle is missing).
- The last open position is closed at the last candle's close.
- Costs: taker fee on entry and exit notional (a maker entry: `maker_fee`, a limit at the
  next open that fills only if that candle trades through it; unfilled means no trade),
  slippage adverse on taker fills, and funding at each settlement (00/08/16 UTC for 8h) a
  position is open at: entry < settlement ≤ exit, rate × the position's notional at the
  settlement's open, paid by longs and received by shorts when positive. Returns scale with
  position_size × leverage; equity compounds trade by trade and is marked at each close.

Buy-and-hold is not expressible as decisions under these rules (it would enter one candle
late), so `buy_and_hold` builds its one trade directly: first open to last close, one fee
each side, held through any gaps, funding at every settlement in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pipeline.backtest.config import BacktestConfig
from pipeline.backtest.funding import settlement_rates
from pipeline.backtest.metrics import equity_metrics, trade_metrics
from pipeline.backtest.rows import EXIT_NAMES
from pipeline.features.barriers import barrier_widths


@dataclass
class BacktestResult:
    """One market's replay: its trades, equity and position per candle, and its figures.

    Trade prices are the quoted candle prices (open or close); slippage lives in `costs`.
    Returns are fractions of the equity at the trade's entry. The tables are built when first
    read: most replays (operating-point options, random entries) need only the metrics.
    """

    timestamps: np.ndarray  # candle open times, ms
    rows: np.ndarray  # one row per trade (`pipeline.backtest.kernel.replay`)
    equity_values: np.ndarray
    positions: np.ndarray
    metrics: dict[str, Any]
    config: BacktestConfig
    decisions: np.ndarray  # int8 per candle: what was replayed

    @cached_property
    def index(self) -> pd.DatetimeIndex:
        return _utc(self.timestamps).rename("timestamp")

    @cached_property
    def equity(self) -> pd.Series:
        return pd.Series(self.equity_values, index=self.index, name="equity")

    @cached_property
    def position(self) -> pd.Series:
        return pd.Series(self.positions, index=self.index, name="position")

    @cached_property
    def trades(self) -> pd.DataFrame:
        rows, ts = self.rows, self.timestamps
        starts = rows[:, 0].astype(np.int64)
        ends = rows[:, 1].astype(np.int64)
        gross, net = rows[:, 6], rows[:, 7]
        return pd.DataFrame(
            {
                "entry_time": _utc(ts[starts]),
                # The close of the last candle held: where a trade leaves at the next open,
                # inside its last candle at a barrier, or at that candle's close before a gap.
                "exit_time": _utc(ts[ends] + self.config.step_ms),
                "side": rows[:, 2].astype(np.int8),
                "entry_price": rows[:, 3],
                "exit_price": rows[:, 4],
                "exit_kind": pd.Categorical.from_codes(
                    rows[:, 5].astype(np.int64) - 1, list(EXIT_NAMES.values())
                ),
                "candles": ends - starts + 1,
                "gross_return": gross,
                "costs": gross - net,
                "funding": rows[:, 8],
                "net_return": net,
            }
        )


def _arrays(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    if len(candles) == 0:
        raise ValueError("no candles to replay")
    out = {
        name: candles[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close")
    }
    out["timestamp"] = candles["timestamp"].to_numpy(dtype=np.int64)
    if np.any(np.diff(out["timestamp"]) <= 0):
        raise ValueError("candle timestamps must be strictly increasing")
    return out


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
    equity: np.ndarray,
    rows: np.ndarray,
    decisions: np.ndarray,
    cfg: BacktestConfig,
) -> BacktestResult:
    net = rows[:, 7]
    metrics: dict[str, Any] = trade_metrics(net)
    metrics["coverage"] = float(np.count_nonzero(decisions)) / len(decisions)
    metrics.update(equity_metrics(equity, int(ts[-1] + cfg.step_ms - ts[0]), cfg.periods_per_year))
    metrics["exposure"] = float(np.count_nonzero(position)) / len(position)
    return BacktestResult(ts, rows, equity, position, metrics, cfg, decisions)


FundingHistory = list[tuple[int, float]]  # (settlement ms, rate), ascending


@dataclass(frozen=True)
class MarketArrays:
    """One market's candles as the replay reads them, with its exits' widths and funding."""

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    width: np.ndarray  # barrier distance per decision candle (inf: time exits only)
    time_limit: np.ndarray  # candles a trade entered after each decision candle may last
    funding: np.ndarray  # rate settled at each candle's open (0: no settlement)


@dataclass(frozen=True)
class Replayed:
    position: np.ndarray
    equity: np.ndarray
    rows: np.ndarray  # one row per trade (see `pipeline.backtest.kernel.replay`)


# Exits that change over time: (first decision ms, time limit T, barrier k or None), ascending.
# A walk-forward whose refits chose their own label rules replays each decision with the rule
# of the refit that made it.
ExitSchedule = tuple[tuple[int, int, float | None], ...]


def _exits(
    ts: np.ndarray, close: np.ndarray, cfg: BacktestConfig, schedule: ExitSchedule | None
) -> tuple[np.ndarray, np.ndarray]:
    """Barrier width and time limit per decision candle (`cfg`'s, or the schedule's)."""
    rules = schedule or ((int(ts[0]), cfg.horizon, cfg.barrier_k),)
    width = np.full(len(ts), np.inf)
    limit = np.full(len(ts), cfg.horizon, dtype=np.int64)
    for k, (since, horizon, barrier_k) in enumerate(rules):
        until = rules[k + 1][0] if k + 1 < len(rules) else np.iinfo(np.int64).max
        here = (ts >= since) & (ts < until)
        if not here.any():
            continue
        width[here] = barrier_widths(
            ts,
            close,
            step_ms=cfg.step_ms,
            k=barrier_k,
            horizon=horizon,
            vol_window=cfg.vol_window,
        )[here]
        limit[here] = horizon
    return width, limit


def market_arrays(
    candles: pd.DataFrame,
    cfg: BacktestConfig,
    funding: FundingHistory | None = None,
    schedule: ExitSchedule | None = None,
) -> MarketArrays:
    """What a replay of `candles` under `cfg` reads, computed once (many replays reuse it);
    with `schedule`, each decision exits by the rule in force at its candle."""
    a = _arrays(candles)
    ts = a["timestamp"]
    width, limit = _exits(ts, a["close"], cfg, schedule)
    return MarketArrays(
        timestamp=ts,
        open=a["open"],
        high=a["high"],
        low=a["low"],
        close=a["close"],
        width=width,
        time_limit=limit,
        funding=_funding(ts, cfg, funding),
    )


def _funding(ts: np.ndarray, cfg: BacktestConfig, funding: FundingHistory | None) -> np.ndarray:
    """The rate settled at each candle's open: the history's where it has one, else the
    configured constant (none charged at all when both are absent or zero)."""
    if funding is None and cfg.funding_rate == 0:
        return np.zeros(len(ts))
    return settlement_rates(
        ts, funding, cfg.funding_rate, cfg.funding_interval_ms, step_ms=cfg.step_ms
    ).rates


def replay_arrays(arrays: MarketArrays, decisions: np.ndarray, cfg: BacktestConfig) -> Replayed:
    """The compiled replay of `decisions` (int8, one per candle) over prepared arrays."""
    from pipeline.backtest.kernel import replay  # numba: loaded when a replay runs

    position, equity, rows, count, _ = replay(
        arrays.timestamp,
        arrays.open,
        arrays.high,
        arrays.low,
        arrays.close,
        decisions,
        arrays.width,
        arrays.funding,
        cfg.step_ms,
        arrays.time_limit,
        cfg.entry_fee,
        cfg.fee,
        cfg.slippage,
        cfg.exposure,
        cfg.maker,
    )
    return Replayed(position, equity, rows[:count])


def run_backtest(
    candles: pd.DataFrame,
    decisions: np.ndarray,
    cfg: BacktestConfig | None = None,
    funding: FundingHistory | None = None,
    schedule: ExitSchedule | None = None,
) -> BacktestResult:
    """Replay one market's decisions under the rules in this module's docstring.

    `funding` is the market's stored funding history, (settlement ms, rate) ascending, where
    ingested; settlements it does not cover are charged the configured constant. `schedule`
    replaces `cfg`'s exits by rules that change over time.
    """
    cfg = cfg or BacktestConfig()
    arrays = market_arrays(candles, cfg, funding, schedule)
    d = _decision_array(decisions, len(arrays.timestamp))
    done = replay_arrays(arrays, d, cfg)
    return _result(arrays.timestamp, done.position, done.equity, done.rows, d, cfg)


def buy_and_hold(
    candles: pd.DataFrame,
    cfg: BacktestConfig | None = None,
    funding: FundingHistory | None = None,
) -> BacktestResult:
    """One long trade from the first open to the last close; fees and slippage once a side."""
    cfg = cfg or BacktestConfig()
    a = _arrays(candles)
    ts, opens, closes = a["timestamp"], a["open"], a["close"]
    f, fee = cfg.exposure, cfg.fee
    entry_fill = opens[0] * (1.0 + cfg.slippage)
    rates = _funding(ts, cfg, funding).copy()
    rates[0] = 0.0  # entered at that open: not yet open at its settlement
    paid = np.cumsum(rates * opens / opens[0])
    mark = 1.0 + f * (closes / entry_fill - 1.0) - fee * f - f * paid
    exit_fill = closes[-1] * (1.0 - cfg.slippage)
    net = (
        f * (exit_fill / entry_fill - 1.0) - fee * f * (1.0 + exit_fill / entry_fill) - f * paid[-1]
    )
    equity = np.maximum(mark, 0.0)
    equity[-1] = max(1.0 + net, 0.0)
    gross = f * (closes[-1] / opens[0] - 1.0)
    row = np.array([[0, len(ts) - 1, 1, opens[0], closes[-1], 6, gross, max(net, -1.0), paid[-1]]])
    held = np.ones(len(ts), dtype=np.int8)
    return _result(ts, held, equity, row, held, cfg)


def always_long_decisions(n: int) -> np.ndarray:
    """Long at every close: under re-arm this is one long from the second open to the end."""
    return np.ones(n, dtype=np.int8)
