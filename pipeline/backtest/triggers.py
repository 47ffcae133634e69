"""When a resting exit fills, and at what price: the backtest's barrier rule, one candle at a time.

A barrier trade (`pipeline.backtest.kernel`) leaves at its take-profit or its stop inside a
candle. Live, those levels rest at the exchange as reduce-only stop and take-profit orders.
The replay exchange and the paper broker trigger them here, by the same rule, so a replayed
live trade exits where its backtest does:

- a candle's range is checked once the candle has closed (the exchanges' prices inside a
  candle are not recorded, only its open, high, low and close);
- a stop fills at its level, or at the candle's open when the open gapped through it; a
  take-profit fills at its level, never better (the backtest's conservative reading);
- when a candle touches both, the stop fills first and the take-profit finds nothing left to
  reduce (`in_fill_order` puts stops first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

STOP, TAKE_PROFIT = "stop", "take_profit"
EXIT_KINDS = (STOP, TAKE_PROFIT)
SELL = "sell"


@dataclass(frozen=True)
class Candle:
    open_ms: int
    open: float
    high: float
    low: float


def fill_price(kind: str, side: str, level: float, candle: Candle) -> float | None:
    """The price a resting exit of `kind` ("stop" or "take_profit") on the `side` it trades
    ("sell" closes a long, "buy" a short) fills at in `candle`, or None if not touched."""
    if kind not in EXIT_KINDS:
        raise ValueError(f"a resting exit is one of {EXIT_KINDS}, got {kind!r}")
    below = side == SELL  # a long's stop sits below the price; a short's take-profit too
    if kind == TAKE_PROFIT:
        below = not below
    touched = candle.low <= level if below else candle.high >= level
    if not touched:
        return None
    if kind == STOP:  # at the level, or at an open that gapped through it
        return min(candle.open, level) if below else max(candle.open, level)
    return level


T = TypeVar("T")


def in_fill_order(orders: Iterable[T], kind_of: Callable[[T], str]) -> list[T]:
    """Stops before take-profits (stable): when one candle touches both, the stop is first."""
    return sorted(orders, key=lambda order: kind_of(order) != STOP)


def closed_candles(
    rows: Sequence[Sequence[float]], since_ms: int, now_ms: int, step_ms: int
) -> list[Candle]:
    """The candles of `rows` ([open_ms, open, high, low, ...], ascending) that opened at or
    after `since_ms` and have closed by `now_ms`, as `Candle`s."""
    return [
        Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]))
        for r in rows
        if int(r[0]) >= since_ms and int(r[0]) + step_ms <= now_ms
    ]
