"""Numbers and times as a reader sees them: a few significant digits, UTC dates."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd


def significant(value: float | int | None, digits: int = 4) -> float | None:
    """`value` rounded to `digits` significant digits; None for None, NaN or ±∞.

    Metadata floats are plotted over materialisations and read in a table: 0.5312 says what
    0.531187426 does, and a missing figure is absent rather than a NaN or a sentinel.
    """
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return float(f"{number:.{digits}g}")


def rounded_json(value: Any, digits: int = 4) -> Any:
    """A JSON-like value with every float at `digits` significant digits (None where not
    finite): for display, the exact figures stay in the model store."""
    if isinstance(value, dict):
        return {k: rounded_json(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded_json(v, digits) for v in value]
    if isinstance(value, float):
        return significant(value, digits)
    return value


def utc_text(value: int | float | str | datetime | pd.Timestamp) -> str:
    """A moment as "2023-06-30 23:00 UTC": epoch milliseconds, ISO text or a timestamp."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = datetime.fromtimestamp(value / 1000, UTC)
    else:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"{stamp:%Y-%m-%d %H:%M} UTC"
