"""The replay loop, candle by candle, compiled with numba: one market, one pass.

Barrier exits make the position path-dependent (where a trade leaves decides when the next
may enter), so the replay is a loop; numba keeps it fast enough to run a thousand random
strategies per walk-forward. The rules are in `pipeline.backtest.engine`'s docstring; this
module only executes them. Prices are quoted candle prices; fills add slippage (none for a
maker entry, which fills at its limit).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.backtest.rows import EXIT_END, EXIT_REVERSE
from pipeline.features.barriers import EXIT_BOTH, EXIT_LOWER, EXIT_TIME, EXIT_UPPER


@njit(cache=True)
def _book(
    trades,
    row,
    start,
    end,
    side,
    entry,
    entry_fill,
    exit_price,
    kind,
    paid,
    entry_fee,
    exit_fee,
    slip,
    f,
):
    """Write one closed trade into `trades[row]`; return its net return (−1 at most)."""
    x_fill = exit_price * (1.0 - side * slip)
    net = (
        side * f * (x_fill / entry_fill - 1.0)
        - entry_fee * f
        - exit_fee * f * x_fill / entry_fill
        - f * paid
    )
    net = max(net, -1.0)  # a loss of all the equity ruins the account
    trades[row, 0] = start
    trades[row, 1] = end
    trades[row, 2] = side
    trades[row, 3] = entry
    trades[row, 4] = exit_price
    trades[row, 5] = kind
    trades[row, 6] = side * f * (exit_price / entry - 1.0)
    trades[row, 7] = net
    trades[row, 8] = paid
    return net


@njit(cache=True)
def replay(
    ts,
    open_,
    high,
    low,
    close,
    decisions,
    width,
    funding,
    step,
    time_limit,
    entry_fee,
    exit_fee,
    slip,
    exposure,
    maker,
):
    """Replay `decisions` (int8, known at each close) over one market's candles.

    `width` and `time_limit` are per decision candle (a walk-forward whose refits chose
    different exits replays them in one pass).

    Returns (position, equity, trades, count, ruined_after): `trades` is a float64 array with
    one row per trade — start, end (last candle held), side, entry price, exit price,
    exit kind, gross, net, funding paid (fraction of entry notional) — of which the first
    `count` rows are filled.
    """
    n = len(ts)
    position = np.zeros(n, dtype=np.int8)
    equity = np.ones(n)
    trades = np.empty((n, 9))
    count = 0
    settled = 1.0  # equity with every closed trade booked
    side = 0
    start = 0
    expiry = 0
    entry = 0.0
    entry_fill = 0.0
    upper = np.inf
    lower = -np.inf
    paid = 0.0  # funding paid so far, fraction of entry notional (negative: received)
    base = 1.0  # equity when the open trade entered
    f = exposure
    for k in range(n):
        contiguous = k > 0 and ts[k] - ts[k - 1] == step
        pending = decisions[k - 1] if contiguous else 0
        exit_price = 0.0
        exit_kind = 0
        if side != 0:  # held through candle k - 1, and candle k follows it
            if funding[k] != 0.0:  # a settlement at this open: the position is open at it
                paid += side * funding[k] * open_[k] / entry
            if pending == side:  # the signal keeps its side: re-arm from this open
                if np.isfinite(width[k - 1]):
                    upper = open_[k] * (1.0 + width[k - 1])
                    lower = open_[k] * (1.0 - width[k - 1])
                else:
                    upper, lower = np.inf, -np.inf
                expiry = k + time_limit[k - 1] - 1
                pending = 0
            elif pending == -side:
                exit_price, exit_kind = open_[k], EXIT_REVERSE
            elif k - 1 >= expiry:
                exit_price, exit_kind = open_[k], EXIT_TIME
            if exit_kind != 0:
                net = _book(
                    trades,
                    count,
                    start,
                    k - 1,
                    side,
                    entry,
                    entry_fill,
                    exit_price,
                    exit_kind,
                    paid,
                    entry_fee,
                    exit_fee,
                    slip,
                    f,
                )
                count += 1
                if net <= -1.0:
                    equity[k:] = 0.0
                    return position, equity, trades, count, k - 1
                settled *= 1.0 + net
                side = 0
        if side == 0 and pending != 0:
            filled = True
            if maker:  # a limit at this open fills only if the candle trades through it
                filled = low[k] < open_[k] if pending > 0 else high[k] > open_[k]
            if filled:
                side = pending
                start = k
                entry = open_[k]
                entry_fill = entry if maker else entry * (1.0 + side * slip)
                if np.isfinite(width[k - 1]):
                    upper = entry * (1.0 + width[k - 1])
                    lower = entry * (1.0 - width[k - 1])
                else:
                    upper, lower = np.inf, -np.inf
                expiry = k + time_limit[k - 1] - 1
                paid = 0.0
                base = settled
        if side != 0:
            position[k] = side
            hit_up = high[k] >= upper
            hit_down = low[k] <= lower
            exit_kind = 0
            stop_first = hit_up and hit_down
            if stop_first:
                exit_kind = EXIT_BOTH
            elif hit_up:
                exit_kind = EXIT_UPPER
            elif hit_down:
                exit_kind = EXIT_LOWER
            if exit_kind != 0:
                stopped = stop_first or (hit_down if side > 0 else hit_up)
                if stopped:  # at the stop, or at a worse open that gapped through it
                    exit_price = min(open_[k], lower) if side > 0 else max(open_[k], upper)
                else:  # at the take-profit, never better
                    exit_price = upper if side > 0 else lower
            elif k == n - 1 or ts[k + 1] - ts[k] != step:
                exit_price, exit_kind = close[k], EXIT_END  # never carried across a gap
            if exit_kind != 0:
                net = _book(
                    trades,
                    count,
                    start,
                    k,
                    side,
                    entry,
                    entry_fill,
                    exit_price,
                    exit_kind,
                    paid,
                    entry_fee,
                    exit_fee,
                    slip,
                    f,
                )
                count += 1
                if net <= -1.0:
                    equity[k:] = 0.0
                    return position, equity, trades, count, k
                settled *= 1.0 + net
                side = 0
        if side != 0:  # marked at the close as if closed there before exit costs
            mark = base * (
                1.0 + side * f * (close[k] / entry_fill - 1.0) - entry_fee * f - f * paid
            )
            equity[k] = max(mark, 0.0)
        else:
            equity[k] = settled
    return position, equity, trades, count, n - 1
