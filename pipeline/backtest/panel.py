"""Several markets' candles on one grid: the [T, M] prices a portfolio replay reads.

One equity pays for every market, so a candle missing in one market would leave the whole
portfolio unpriced at that instant. A panel therefore holds only the candles every market has,
and refuses a gap inside a market's span (and any NaN price) rather than fill it: a filled
price is a trade that could not have happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.data.timeframes import ms_to_iso, parse_date_ms, timeframe_ms

PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Panel:
    """Aligned candles of `markets`: `timestamps` (open times, ms, one step apart) [T] and
    open/high/low/close [T, M] float64. Checked once, when built (`check_prices`): its arrays
    are read-only copies, so a replay can trust them without checking again."""

    timestamps: np.ndarray
    markets: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    timeframe: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "markets", tuple(self.markets))
        for name, dtype in (("timestamps", np.int64), *((p, np.float64) for p in PRICES)):
            array = np.array(getattr(self, name), dtype=dtype, order="C")  # a copy of its own
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        check_prices(self)

    @property
    def step_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.timestamps), len(self.markets)


def _at(ts: np.ndarray, k: int) -> str:
    return str(ms_to_iso(int(ts[k])))


def check_prices(p: Panel) -> None:
    """Refuse what the replay cannot price: a shape that is not [T, M], timestamps off the
    timeframe's grid or not one step apart, a NaN or non-positive price, a high below the open
    or close, a low above them (the liquidation bound relies on low ≤ open, close ≤ high)."""
    step = timeframe_ms(p.timeframe)
    ts = p.timestamps
    n, m = len(ts), len(p.markets)
    if n == 0 or m == 0:
        raise ValueError(f"a panel needs candles and markets, got {n} candles × {m} markets")
    if len(set(p.markets)) != m:
        raise ValueError(f"markets repeat in the panel: {list(p.markets)}")
    if ts.ndim != 1:
        raise ValueError("timestamps must be one-dimensional")
    for name in PRICES:
        if getattr(p, name).shape != (n, m):
            raise ValueError(
                f"{name} has shape {getattr(p, name).shape}, the panel is {n} candles × {m} markets"
            )
    if (ts % step).any():
        k = int(np.flatnonzero(ts % step)[0])
        raise ValueError(f"candle at {_at(ts, k)} is not on the {p.timeframe} grid")
    apart = np.flatnonzero(np.diff(ts) != step)
    if len(apart):
        k = int(apart[0])
        raise ValueError(
            f"panel timestamps must be one {p.timeframe} step apart: {_at(ts, k)} is followed "
            f"by {_at(ts, k + 1)}"
        )
    for name in PRICES:
        bad = ~(getattr(p, name) > 0)  # NaN compares false: caught here too
        if bad.any():
            k, j = (int(x) for x in np.argwhere(bad)[0])
            value = getattr(p, name)[k, j]
            raise ValueError(
                f"{p.markets[j]}: {name} price {float(value)!r} at {_at(ts, k)}: every market "
                "needs a positive price at every candle of the panel"
            )
    wrong = (p.high < np.maximum(p.open, p.close)) | (p.low > np.minimum(p.open, p.close))
    if wrong.any():
        k, j = (int(x) for x in np.argwhere(wrong)[0])
        raise ValueError(
            f"{p.markets[j]}: candle at {_at(ts, k)} has its open or close outside [low, high]"
        )


def _bound(value: int | str | None) -> int | None:
    return parse_date_ms(value) if isinstance(value, str) else value


def _span(market: str, frame: pd.DataFrame, step: int, timeframe: str) -> tuple[int, int]:
    """The market's first and last candle, refusing a gap or disorder between them."""
    ts = frame["timestamp"].to_numpy(dtype=np.int64)
    if len(ts) == 0:
        raise ValueError(f"{market}: no {timeframe} candles in the panel's period")
    steps = np.diff(ts)
    if (steps <= 0).any():
        k = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"{market}: candle times must be strictly ascending ({_at(ts, k)} then "
            f"{_at(ts, k + 1)})"
        )
    if (steps != step).any():
        k = int(np.flatnonzero(steps != step)[0])
        raise ValueError(
            f"{market}: gap in the {timeframe} candles after {_at(ts, k)} (next candle at "
            f"{_at(ts, k + 1)}): a panel needs every candle of each market's span"
        )
    return int(ts[0]), int(ts[-1])


def panel(
    candles: Mapping[str, pd.DataFrame],
    timeframe: str,
    start: int | str | None = None,
    end: int | str | None = None,
) -> Panel:
    """The markets' `timeframe` candles with open time in [start, end] (ms or ISO, inclusive),
    cut to the period every market covers. A gap inside a market's span is refused, naming the
    market and the time: inner-aligning across it would silently drop those candles from all
    markets."""
    if not candles:
        raise ValueError("a panel needs at least one market")
    step = timeframe_ms(timeframe)
    lo, hi = _bound(start), _bound(end)
    cut: dict[str, pd.DataFrame] = {}
    for market, frame in candles.items():
        missing = [c for c in ("timestamp", *PRICES) if c not in frame.columns]
        if missing:
            raise ValueError(f"{market}: candles lack column(s) {', '.join(missing)}")
        ts = frame["timestamp"].to_numpy(dtype=np.int64)
        keep = np.ones(len(ts), dtype=bool)
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts <= hi
        cut[market] = frame.loc[keep]
    spans = {m: _span(m, f, step, timeframe) for m, f in cut.items()}
    first = max(s[0] for s in spans.values())
    last = min(s[1] for s in spans.values())
    if first > last:
        described = ", ".join(f"{m} {ms_to_iso(a)} → {ms_to_iso(b)}" for m, (a, b) in spans.items())
        raise ValueError(f"the markets share no {timeframe} candle: {described}")
    rows = {m: (f["timestamp"].to_numpy(dtype=np.int64) >= first) for m, f in cut.items()}
    count = (last - first) // step + 1
    arrays = {
        name: np.column_stack(
            [f[name].to_numpy(dtype=np.float64)[rows[m]][:count] for m, f in cut.items()]
        )
        for name in PRICES
    }
    return Panel(
        timestamps=np.arange(first, last + 1, step, dtype=np.int64),
        markets=tuple(cut),
        timeframe=timeframe,
        **arrays,
    )
