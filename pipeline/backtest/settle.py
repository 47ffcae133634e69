"""Trades → returns on equity after every cost, and the equity curve marked at each close.

Per trade, with f = position_size × leverage (notional per unit of equity at entry), side s,
fills worse than the quoted price by the slippage (entry p_e(1 + s·slip), exit p_x(1 − s·slip)):

    gross  = s·f·(p_x / p_e − 1)                          quoted prices, no costs
    net    = s·f·(x_f / e_f − 1) − fee·f·(1 + x_f / e_f) − s·f·funding_per_candle·candles_held
    costs  = gross − net                                  slippage + both fees + funding

The exit fee is charged on the exit notional (x_f / e_f of the entry notional); funding is
charged on the entry notional for every candle held. Equity compounds trade by trade.
While a trade is open, the close is marked as if the position were closed at that close
before exit costs (entry fee and funding so far are already paid), which is how an exchange
shows unrealised PnL. There is no liquidation engine (highs and lows are not read): marks
are floored at 0, and a trade whose net return loses all of the equity ruins the account:
equity stays at 0 and no later trade is taken. With leverage, read results accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.backtest.config import BacktestConfig


@dataclass(frozen=True)
class Settlement:
    """Per-trade figures (arrays aligned with the trades) and the per-candle equity."""

    starts: np.ndarray
    ends: np.ndarray
    exit_at_close: np.ndarray
    sides: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    candles_held: np.ndarray
    gross: np.ndarray
    costs: np.ndarray
    net: np.ndarray
    equity: np.ndarray
    ruined_after: int  # index of the last candle a position may be held (n - 1 unless ruined)


def settle(
    opens: np.ndarray,
    closes: np.ndarray,
    timestamps: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    exit_at_close: np.ndarray,
    sides: np.ndarray,
    cfg: BacktestConfig,
) -> Settlement:
    n = len(closes)
    f, slip, fee = cfg.exposure, cfg.slippage, cfg.fee
    funding = cfg.funding_per_candle
    step = cfg.step_ms
    s = sides.astype(np.float64)

    entry_price = opens[starts]
    exit_price = np.where(exit_at_close, closes[ends], opens[np.minimum(ends + 1, n - 1)])
    entry_fill = entry_price * (1.0 + s * slip)
    exit_fill = exit_price * (1.0 - s * slip)
    ratio = exit_fill / entry_fill
    held = (timestamps[ends] - timestamps[starts]) // step + 1
    gross = s * f * (exit_price / entry_price - 1.0)
    net = s * f * (ratio - 1.0) - fee * f * (1.0 + ratio) - s * f * funding * held

    last_candle = n - 1
    ruined = np.flatnonzero(net <= -1.0)
    if len(ruined):
        r = int(ruined[0])
        starts, ends, exit_at_close, sides, s = (
            a[: r + 1] for a in (starts, ends, exit_at_close, sides, s)
        )
        entry_price, exit_price, entry_fill, held, gross, net = (
            a[: r + 1] for a in (entry_price, exit_price, entry_fill, held, gross, net)
        )
        net = net.copy()
        net[r] = -1.0
        last_candle = int(ends[r])

    after = np.cumprod(1.0 + net)
    before = np.concatenate(([1.0], after[:-1]))
    # Candle by whose close each trade is settled: its last candle, or the next one's open.
    settled_at = np.where(exit_at_close, ends, ends + 1)
    settled = np.cumsum(np.bincount(settled_at, minlength=n)[:n])
    equity = np.concatenate(([1.0], after))[settled]
    if len(starts):
        # before·(1 + s·f·(close / e_f − 1) − fee·f − s·f·funding·candles) = a·close + b − c·candles
        a = before * s * f / entry_fill
        b = before * (1.0 - s * f - fee * f)
        trade = np.cumsum(np.bincount(starts, minlength=n)[:n]) - 1
        j = np.maximum(trade, 0)
        mark = a[j] * closes + b[j]
        if funding:
            candles = (timestamps - timestamps[starts][j]) // step + 1
            mark -= (before * s * f * funding)[j] * candles
        open_now = (trade >= 0) & (np.arange(n) < settled_at[j])
        equity = np.where(open_now, np.maximum(mark, 0.0), equity)

    return Settlement(
        starts=starts,
        ends=ends,
        exit_at_close=exit_at_close,
        sides=sides,
        entry_price=entry_price,
        exit_price=exit_price,
        candles_held=held,
        gross=gross,
        costs=gross - net,
        net=net,
        equity=equity,
        ruined_after=last_candle,
    )
