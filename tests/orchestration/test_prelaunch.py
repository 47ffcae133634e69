"""Prelaunched live runs: which candles a tick requests, and the wait for the close."""

from __future__ import annotations

import pytest

from pipeline.prelaunch import CloseNotReachedError, candles_to_request, wait_for_close

STEP, LEAD, LIMIT = 4 * 3_600_000, 35_000, 12
L = 1_700_000_000_000 // STEP * STEP  # the newest closed candle's open time
NEXT_CLOSE = L + 2 * STEP  # when the candle after it closes


def test_a_candle_closing_before_the_next_tick_is_requested_once() -> None:
    soon, later = NEXT_CLOSE - 20_000, NEXT_CLOSE - 3_600_000
    assert candles_to_request(L, None, later, STEP, LEAD, LIMIT) == [L]  # first tick
    assert candles_to_request(L, None, soon, STEP, LEAD, LIMIT) == [L, L + STEP]
    assert candles_to_request(L, L, later, STEP, LEAD, LIMIT) == []
    assert candles_to_request(L, L, soon, STEP, LEAD, LIMIT) == [L + STEP]
    # Already requested ahead: neither again before nor after its close.
    assert candles_to_request(L, L + STEP, soon, STEP, LEAD, LIMIT) == []
    assert candles_to_request(L + STEP, L + STEP, NEXT_CLOSE + 1_000, STEP, LEAD, LIMIT) == []


def test_a_candle_one_market_has_not_shown_yet_is_not_requested_ahead() -> None:
    """The portfolio's newest closed candle is the laggard's: the next one has closed for the
    others but not on every market's klines, so it waits for the next tick."""
    after_its_close = NEXT_CLOSE + 60_000
    assert candles_to_request(L, L, after_its_close, STEP, LEAD, LIMIT) == []
    assert candles_to_request(L + STEP, L, after_its_close, STEP, LEAD, LIMIT) == [L + STEP]


def test_catching_up_comes_first_and_no_lead_means_none_ahead() -> None:
    behind = candles_to_request(L, L - 3 * STEP, NEXT_CLOSE - 1_000, STEP, LEAD, LIMIT)
    assert behind == [L - 2 * STEP, L - STEP, L, L + STEP]
    full = candles_to_request(L, L - 20 * STEP, NEXT_CLOSE - 1_000, STEP, LEAD, LIMIT)
    assert len(full) == LIMIT and full[-1] < L  # the missed ones first, in order
    assert candles_to_request(L, L, NEXT_CLOSE - 1_000, STEP, 0, LIMIT) == []


def test_the_wait_ends_once_the_exchange_clock_passes_the_close() -> None:
    clock = {"now": 1_000, "wall": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["wall"] += seconds
        clock["now"] += int(seconds * 1000)

    waited = wait_for_close(lambda: clock["now"], 3_000, 10.0, sleep, lambda: clock["wall"])
    assert clock["now"] >= 3_000 and waited == pytest.approx(2.0, abs=0.1)
    assert max(slept) <= 0.5  # never sleeps far past the close
    assert wait_for_close(lambda: 5_000, 3_000, 10.0, sleep, lambda: 0.0) == 0.0


def test_a_stalled_clock_fails_the_wait_with_a_clear_error() -> None:
    wall = {"t": 0.0}

    def sleep(seconds: float) -> None:
        wall["t"] += seconds

    with pytest.raises(CloseNotReachedError, match="short of the candle's close"):
        wait_for_close(lambda: 1_000, 3_000, 5.0, sleep, lambda: wall["t"])
