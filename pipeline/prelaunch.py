"""Live runs launched before their candle closes, so the close waits for nothing but the work.

A sensor sees a close only at its next tick (up to its interval later), and a run then spends
seconds starting a process and importing the code location before it reads a candle. When the
next decision candle closes within `lead_ms` of a tick (the sensor interval and a margin, so
before the next tick), the sensor requests that candle's run at once: its process starts,
imports and opens its resources, then waits on the exchange's clock for the close and decides
the moment it has passed. The run key is the candle's, as a run requested after the close would
have, so a candle still runs exactly once; the cursor moves past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CloseNotReachedError(RuntimeError):
    """The exchange's clock did not reach the candle's close in time (a stalled clock)."""


def candles_to_request(
    latest_closed: int,
    last_requested: int | None,
    now_ms: int,
    step_ms: int,
    lead_ms: int,
    limit: int,
) -> list[int]:
    """Open times of the candles to request this tick, oldest first, at most `limit`: each
    closed one after `last_requested` (the newest closed alone on a first tick), then the next
    candle when it closes within `lead_ms` of `now_ms` (its run waits for the close)."""
    first = latest_closed if last_requested is None else last_requested + step_ms
    candles = list(range(first, latest_closed + 1, step_ms))[:limit]
    upcoming = latest_closed + step_ms
    # Not yet closed (a candle already closed for some markets but not all, e.g. a lagging
    # kline, waits for them: it is requested once every market shows it), and closing soon.
    closes_soon = lead_ms > 0 and 0 < upcoming + step_ms - now_ms <= lead_ms
    if closes_soon and len(candles) < limit and first <= upcoming:  # not requested yet
        candles.append(upcoming)
    return candles


def wait_for_close(
    now_ms: Callable[[], int],
    close_ms: int,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> float:
    """Block until the exchange's clock (`now_ms`) has reached `close_ms`; seconds waited.
    Polls at most every half second (never past the close by more than that on a real-time
    clock); raises CloseNotReachedError after `timeout_s`."""
    started = monotonic()
    while (now := now_ms()) < close_ms:
        if monotonic() - started > timeout_s:
            raise CloseNotReachedError(
                f"the exchange's clock is {(close_ms - now) / 1000:.1f} s short of the candle's "
                f"close after {timeout_s:.0f} s of waiting"
            )
        sleep(min(0.5, max(0.05, (close_ms - now) / 1000.0)))
    return monotonic() - started
