"""Funding a panel's positions pay: per candle and market, Σ rate × price per unit held.

A perpetual settles funding every 8h (00/08/16 UTC) at rate × the position's notional at that
instant. Candle k's position (after its open's fills) is the one held at every settlement s
with open_k < s ≤ open_{k+1}: the single-market rule "entry < settlement ≤ exit". So
`unit[k, m]` = Σ rate_s × price_s over those settlements, in quote per unit of quantity,
kept only for the candles that hold a charged settlement (rows `candles`): 1/8 of hourly
candles, so the replay reads (and the machine pages in) an eighth of a dense [T, M] grid.

The price at a settlement is exact where the panel or the given 1h candles open at it:
1. at the next candle's open inside the panel: that open (1h, 2h, 4h, 8h candles: always);
2. otherwise (inside a 6h, 12h or 1d candle, or at the close of the panel's last candle): the open
   of the market's 1h candle at that instant, where 1h candles are given and have it;
3. otherwise the candle's close: exact at the panel's end (the close is the price at that
   instant), an approximation inside a candle, counted as `priced_at_close`.
The rate is the recorded one within a minute of the settlement, else the stated constant
(`pipeline.backtest.funding.match_rates`), counted as `filled_by_constant`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.backtest.funding import SETTLEMENT_INTERVAL_MS, match_rates, settlement_times
from pipeline.backtest.panel import Panel

FundingHistory = list[tuple[int, float]]  # (settlement ms, rate), ascending


@dataclass(frozen=True)
class PanelFunding:
    """`unit` [S, M] for the candle indexes `candles` [S] (ascending); per market:
    `settlements` in the panel, those charged the constant rate (`filled_by_constant`) and
    those priced at a candle's close inside it (`priced_at_close`)."""

    candles: np.ndarray
    unit: np.ndarray
    settlements: np.ndarray
    filled_by_constant: np.ndarray
    priced_at_close: np.ndarray

    def dense(self, n_candles: int) -> np.ndarray:
        """`unit` as a [T, M] grid, zero at candles without a charged settlement."""
        out = np.zeros((n_candles, self.unit.shape[1]))
        out[self.candles] = self.unit
        return out


def _hourly_opens(market: str, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ts = frame["timestamp"].to_numpy(dtype=np.int64)
    if (np.diff(ts) <= 0).any():
        raise ValueError(f"{market}: 1h candle times must be strictly ascending")
    return ts, frame["open"].to_numpy(dtype=np.float64)


def panel_funding(
    p: Panel,
    funding: Mapping[str, FundingHistory] | None,
    constant: float,
    hourly: Mapping[str, pd.DataFrame] | None = None,
    interval_ms: int = SETTLEMENT_INTERVAL_MS,
) -> PanelFunding:
    """Funding per unit held through each candle of `p` (see the module docstring).

    `funding`: recorded histories by market (a market without one is charged `constant` at
    every settlement); `hourly`: 1h candles by market, to price settlements inside candles.
    """
    n, m = p.shape
    step = p.step_ms
    ts = p.timestamps
    settle = settlement_times(int(ts[0]), int(ts[-1]) + step, interval_ms)
    k = (settle - ts[0] - 1) // step  # the candle whose position holds through s
    at_next_open = (settle - ts[0]) % step == 0
    inside_panel = at_next_open & (k + 1 < n)
    rows = np.unique(k)  # the candles that hold a settlement
    row_of = np.searchsorted(rows, k)
    filled = np.zeros(m, dtype=np.int64)
    at_close = np.zeros(m, dtype=np.int64)
    cells, charges = [], []
    for j, market in enumerate(p.markets):
        rates, filled[j] = match_rates(settle, (funding or {}).get(market), constant)
        price = p.close[k, j]
        price[inside_panel] = p.open[k[inside_panel] + 1, j]
        known = inside_panel.copy()
        frame = (hourly or {}).get(market)
        if frame is not None and len(frame) and len(settle):
            hours, opens = _hourly_opens(market, frame)
            where = np.clip(np.searchsorted(hours, settle), 0, len(hours) - 1)
            found = ~known & (hours[where] == settle)
            price[found] = opens[where[found]]
            known |= found
        at_close[j] = int(np.count_nonzero(~known & ~at_next_open))
        charged = rates != 0.0
        cells.append(row_of[charged] * m + j)
        charges.append(rates[charged] * price[charged])
    cells_all = np.concatenate(cells)
    if len(cells_all):  # one pass over the rows, not one per market
        charges_all = np.concatenate(charges)
        unit = np.bincount(cells_all, charges_all, minlength=len(rows) * m).reshape(-1, m)
    else:  # nothing charged (no history and a zero constant): no rows to read
        rows, unit = rows[:0], np.zeros((0, m))
    return PanelFunding(
        candles=rows,
        unit=unit,
        settlements=np.full(m, len(settle), dtype=np.int64),
        filled_by_constant=filled,
        priced_at_close=at_close,
    )
