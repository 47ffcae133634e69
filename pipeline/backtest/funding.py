"""Funding rates at the candles where a perpetual settles them, for the backtest to charge.

A candle whose open time is a multiple of the settlement interval (8h: 00/08/16 UTC) is a
settlement; a position held across that instant pays (long) or receives (short) rate ×
notional. The rate is the exchange's recorded one where the stored history has a row within a
minute of the settlement, and the stated constant (0.01 % per 8h) where it does not.

`settlement_rates` serves one market's candles that open at every settlement; the portfolio
replay, whose 6h, 12h and 1d candles hold settlements inside them, takes the instants and their
rates from `settlement_times` and `match_rates` (`pipeline.backtest.panel_funding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RATE = 0.0001
SETTLEMENT_INTERVAL_MS = 8 * 3_600_000
# Binance stamps settlements a few ms late; anything further than this is another settlement.
MATCH_TOLERANCE_MS = 60_000


@dataclass(frozen=True)
class SettlementRates:
    """`rates[i]`: the rate settled at candle i's open (0.0 where none is settled).

    `filled_by_constant` counts the settlements charged at the constant rather than a recorded
    rate: all of them without a history; with one, those before its first row, after its last,
    or in a hole inside it. `settlements` counts every settlement among the candles.
    """

    rates: np.ndarray
    filled_by_constant: int
    settlements: int


def settlement_rates(
    candle_ms: np.ndarray,
    funding: list[tuple[int, float]] | None,
    constant: float = DEFAULT_RATE,
    interval_ms: int = SETTLEMENT_INTERVAL_MS,
    step_ms: int | None = None,
) -> SettlementRates:
    """The funding rate settled at each candle's open time; see `SettlementRates`.

    Candles must be ascending and their timeframe (`step_ms`) must open at every settlement
    (1h, 2h, 4h, 8h): others (6h, 12h, 1d) would skip settlements in silence, so they are
    refused.
    """
    opens = np.asarray(candle_ms, dtype=np.int64)
    if opens.ndim != 1:
        raise ValueError("candle_ms must be one-dimensional")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    steps = np.diff(opens)
    if (steps <= 0).any():
        raise ValueError("candle open times must be strictly ascending")
    # The candles' grid: the timeframe when known, else the finest step seen (gaps are wider).
    step = step_ms or (int(np.gcd.reduce(steps)) if len(steps) else 0)
    if step and interval_ms % step:
        raise ValueError(
            f"candles {step} ms apart do not open at every settlement "
            f"({interval_ms} ms apart): funding would be missed"
        )
    at_settlement = opens % interval_ms == 0
    settle_times = opens[at_settlement]
    recorded, filled = match_rates(settle_times, funding, constant)
    rates = np.zeros(len(opens), dtype=np.float64)
    rates[at_settlement] = recorded
    return SettlementRates(rates=rates, filled_by_constant=filled, settlements=len(settle_times))


def settlement_times(
    after_ms: int, until_ms: int, interval_ms: int = SETTLEMENT_INTERVAL_MS
) -> np.ndarray:
    """Every settlement instant s with after_ms < s ≤ until_ms (multiples of the interval)."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    first = (after_ms // interval_ms + 1) * interval_ms
    last = until_ms // interval_ms * interval_ms
    return np.arange(first, last + 1, interval_ms, dtype=np.int64)


def match_rates(
    settle_times: np.ndarray,
    funding: list[tuple[int, float]] | None,
    constant: float = DEFAULT_RATE,
) -> tuple[np.ndarray, int]:
    """The rate of each settlement: the history's row within `MATCH_TOLERANCE_MS` of it (the
    nearest), else `constant`. Returns the rates and how many took the constant."""
    wanted = np.asarray(settle_times, dtype=np.int64)
    recorded = np.full(len(wanted), np.nan)
    if funding:
        times = np.array([ms for ms, _ in funding], dtype=np.int64)
        values = np.array([rate for _, rate in funding], dtype=np.float64)
        if (np.diff(times) <= 0).any():
            raise ValueError("funding rows must be strictly ascending in time")
        right = np.clip(np.searchsorted(times, wanted), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        nearest = np.where(
            np.abs(times[left] - wanted) <= np.abs(times[right] - wanted), left, right
        )
        close = np.abs(times[nearest] - wanted) <= MATCH_TOLERANCE_MS
        recorded[close] = values[nearest[close]]
    missing = np.isnan(recorded)
    recorded[missing] = constant
    return recorded, int(missing.sum())
