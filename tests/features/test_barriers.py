"""Triple-barrier outcomes against series computed by hand."""

import numpy as np
import pytest

from pipeline.features.barriers import (
    DOWN,
    EXIT_BOTH,
    EXIT_LOWER,
    EXIT_TIME,
    EXIT_UPPER,
    NO_TRADE,
    UP,
    barrier_outcomes,
)

H = 3_600_000
COST = 0.001


def outcomes(rows, hours=None, width=0.02, horizon=3, margin=0.0):
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    ts = np.array(hours if hours is not None else range(len(rows)), dtype="int64") * H
    widths = np.full(len(rows), width, dtype=float)
    return barrier_outcomes(
        ts, o, h, lo, c, step_ms=H, width=widths, horizon=horizon, cost=COST, margin=margin
    )


# open, high, low, close
SERIES = [
    (100.0, 101.0, 99.0, 100.0),
    (100.0, 101.0, 99.5, 100.5),  # t=0 enters at 100: barriers 102 / 98, nothing here
    (100.5, 102.5, 100.0, 102.0),  # t=0: 102.5 ≥ 102, up first. t=1 (entry 100.5): none
    (102.0, 103.0, 97.0, 100.0),  # t=1: 103 ≥ 102.51 and 97 ≤ 98.49 in one candle: both
]


def test_the_first_barrier_touched_decides_and_both_in_one_candle_is_no_trade() -> None:
    out = outcomes(SERIES)
    # t=0: the upper barrier in the second candle after entry, at exactly +2 %.
    assert (out.label[0], out.exit_kind[0], out.exit_offset[0]) == (UP, EXIT_UPPER, 1)
    assert out.long_return[0] == pytest.approx(0.02)
    # t=1: both barriers inside candle 3; the stop is assumed first, so neither side pays.
    assert (out.label[1], out.exit_kind[1], out.exit_offset[1]) == (NO_TRADE, EXIT_BOTH, 1)
    assert out.long_return[1] == pytest.approx(-0.02)
    # t=2: enters at 102, the lower barrier 99.96 is crossed in the entry candle itself.
    assert (out.label[2], out.exit_kind[2], out.exit_offset[2]) == (DOWN, EXIT_LOWER, 0)
    assert out.long_return[2] == pytest.approx(-0.02)
    # t=3: no next candle to enter at: unknown.
    assert np.isnan(out.label[3]) and out.exit_kind[3] == -1


@pytest.mark.parametrize(
    ("next_open", "label"),
    [(100.5, UP), (99.5, DOWN), (100.05, NO_TRADE), (99.95, NO_TRADE)],
    ids=["up past cost", "down past cost", "dead zone up", "dead zone down"],
)
def test_the_time_limit_exits_at_the_next_open_and_the_dead_zone_is_no_trade(
    next_open: float, label: float
) -> None:
    quiet = [(100.0, 100.4, 99.6, 100.0)] * 4
    out = outcomes([(100.0, 100.0, 100.0, 100.0), *quiet, (next_open, 100.6, 99.4, 100.0)])
    # t=1 enters at candle 2's open (100), holds candles 2–4, leaves at candle 5's open.
    assert (out.exit_kind[1], out.exit_offset[1]) == (EXIT_TIME, 2)
    assert out.long_return[1] == pytest.approx(next_open / 100 - 1)
    assert out.label[1] == label
    # t=2 would leave at candle 6's open, which does not exist yet: unknown.
    assert np.isnan(out.label[2])


def test_a_margin_widens_the_dead_zone() -> None:
    rows = [(100.0, 100.0, 100.0, 100.0), *[(100.0, 100.4, 99.6, 100.0)] * 3]
    rows.append((100.3, 100.4, 99.6, 100.3))
    assert outcomes(rows).label[0] == UP
    assert outcomes(rows, margin=0.005).label[0] == NO_TRADE


def test_a_stop_gapped_through_fills_at_the_worse_open() -> None:
    rows = [(100.0, 100.0, 100.0, 100.0), (100.0, 100.5, 99.5, 99.0), (97.0, 97.5, 96.0, 97.0)]
    rows.append((97.0, 97.0, 97.0, 97.0))
    out = outcomes(rows)
    # t=0 enters at 100 (stop 98); candle 2 opens at 97, below the stop: filled at 97.
    assert (out.label[0], out.exit_kind[0], out.exit_offset[0]) == (DOWN, EXIT_LOWER, 1)
    assert out.long_return[0] == pytest.approx(-0.03)


def test_a_barrier_too_close_to_pay_the_round_trip_is_no_trade() -> None:
    out = outcomes(SERIES, width=COST / 2)
    assert out.exit_kind[0] in (EXIT_UPPER, EXIT_LOWER, EXIT_BOTH)
    assert out.label[0] == NO_TRADE


def test_a_gap_in_the_holding_period_leaves_the_outcome_unknown() -> None:
    quiet = (100.0, 100.4, 99.6, 100.0)
    # Hours 0, 1, 2, then 4, 5, 6: hour 3 is missing.
    out = outcomes([quiet] * 6, hours=[0, 1, 2, 4, 5, 6])
    assert np.isnan(out.label[0])  # holds hours 1-3: reaches the gap before any exit
    assert np.isnan(out.label[2])  # would enter at hour 3, which is missing
    assert np.isnan(out.label[3])  # hours 5, 6 then the data ends: not known yet


def test_an_exit_before_the_gap_is_known() -> None:
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 103.0, 99.6, 102.5),  # t=0: up in the entry candle
        (102.5, 102.6, 102.4, 102.5),
        (102.5, 102.6, 102.4, 102.5),  # after the gap
    ]
    out = outcomes(rows, hours=[0, 1, 2, 4])
    assert (out.label[0], out.exit_offset[0]) == (UP, 0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="time limit"):
        outcomes(SERIES, horizon=0)
    with pytest.raises(ValueError, match="non-negative"):
        outcomes(SERIES, margin=-0.1)
