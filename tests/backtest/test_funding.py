"""Funding rates at settlement candles, on hand-computed series."""

import numpy as np
import pytest

from pipeline.backtest.funding import settlement_rates

H = 3_600_000
T0 = 1609459200000  # 2021-01-01T00:00Z, a settlement


def hours(first: int, count: int, step: int = H) -> np.ndarray:
    return np.arange(first, first + count * step, step, dtype=np.int64)


def test_recorded_rates_constant_outside_and_in_a_hole_zero_between() -> None:
    opens = hours(T0 - 8 * H, 33)  # settlements at −8h, 0, 8h, 16h, 24h: indexes 0, 8, 16, 24, 32
    funding = [
        (T0 + 4, 0.0002),  # a few ms late: still this settlement
        (T0 + 8 * H + 5 * 60_000, 0.0009),  # five minutes off: not the 08:00 settlement
        (T0 + 16 * H - 30_000, -0.0001),  # thirty seconds early: matched
    ]
    got = settlement_rates(opens, funding, constant=0.0003)
    expected = np.zeros(33)
    expected[0] = 0.0003  # before the first row
    expected[8] = 0.0002
    expected[16] = 0.0003  # the hole at 08:00
    expected[24] = -0.0001
    expected[32] = 0.0003  # after the last row
    assert got.rates.tolist() == expected.tolist()
    assert got.filled_by_constant == 3
    assert got.settlements == 5


def test_without_history_every_settlement_is_the_constant() -> None:
    opens = hours(T0 + 4 * H, 6, 4 * H)  # 4h candles: 04, 08, 12, 16, 20, 00
    got = settlement_rates(opens, None)
    assert got.rates.tolist() == [0.0, 0.0001, 0.0, 0.0001, 0.0, 0.0001]
    assert (got.filled_by_constant, got.settlements) == (3, 3)
    empty = settlement_rates(opens, [])
    assert empty.rates.tolist() == got.rates.tolist()
    assert empty.filled_by_constant == 3


def test_gaps_in_the_candles_and_no_settlement_at_all() -> None:
    opens = np.array([T0 + H, T0 + 2 * H, T0 + 8 * H, T0 + 9 * H], dtype=np.int64)
    got = settlement_rates(opens, [(T0 + 8 * H, 0.0005)])
    assert got.rates.tolist() == [0.0, 0.0, 0.0005, 0.0]
    assert (got.filled_by_constant, got.settlements) == (0, 1)
    none = settlement_rates(hours(T0 + H, 5), [(T0, 0.0005)])
    assert none.rates.tolist() == [0.0] * 5
    assert (none.filled_by_constant, none.settlements) == (0, 0)


def test_refusals() -> None:
    with pytest.raises(ValueError, match="do not open at every settlement"):
        settlement_rates(hours(T0, 3, 24 * H), None)
    with pytest.raises(ValueError, match="strictly ascending"):
        settlement_rates(np.array([T0 + H, T0]), None)
    with pytest.raises(ValueError, match="funding rows must be strictly ascending"):
        settlement_rates(hours(T0, 3), [(T0 + 8 * H, 0.0), (T0, 0.0)])
