"""Timeframe strings (ccxt style) and the candle grid they define."""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
SUPPORTED = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


class UnknownTimeframeError(ValueError):
    pass


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle in milliseconds; candles open on multiples of it since the epoch."""
    if timeframe not in SUPPORTED:
        raise UnknownTimeframeError(
            f"unknown timeframe {timeframe!r}; supported: {', '.join(SUPPORTED)}"
        )
    return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]


def candles_in(days: float, timeframe: str) -> int:
    """How many candles of `timeframe` make `days` (at least one)."""
    return max(1, round(days * DAY_MS / timeframe_ms(timeframe)))


def floor_to_grid(ms: int, timeframe: str) -> int:
    step = timeframe_ms(timeframe)
    return ms - ms % step


def ms_to_iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_date_ms(text: str) -> int:
    """ISO date or datetime (UTC unless an offset is given) to epoch milliseconds."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"not an ISO-8601 date: {text!r}") from err
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
