"""The replay exchange's clock: what it answers for "now", and what "closed" is judged by."""

from __future__ import annotations

import threading
import time


class ReplayClock:
    """Real time, or a replayed time that starts at `start_ms` and runs `speed` times faster."""

    def __init__(self, start_ms: int | None = None, speed: float = 1.0):
        if speed <= 0:
            raise ValueError("--speed must be positive")
        self._lock = threading.Lock()
        self._start_ms, self._speed = start_ms, speed
        self._anchor = time.monotonic()

    def now_ms(self) -> int:
        with self._lock:
            if self._start_ms is None:
                return int(time.time() * 1000)
            return int(self._start_ms + (time.monotonic() - self._anchor) * self._speed * 1000)

    def set(self, start_ms: int | None, speed: float | None = None) -> None:
        with self._lock:
            self._start_ms = start_ms
            self._speed = speed if speed is not None else self._speed
            self._anchor = time.monotonic()


LEAD_HOURS = 24


def sample_start_ms(last_close_ms: int, now_ms: int, lead_hours: int = LEAD_HOURS) -> int | None:
    """Where a replay clock starts by default: real time (None) when the data reaches now;
    else `lead_hours` before the data's last close, on the hour, so that candles keep
    closing (and the live sensor keeps launching runs) instead of the exchange sitting years
    behind its own clock with nothing new to serve."""
    if last_close_ms >= now_ms:
        return None
    hour = 3_600_000
    return (last_close_ms - lead_hours * hour) // hour * hour
