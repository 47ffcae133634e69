"""Candle validation (pandera): a batch that breaks a rule is refused whole, with the rule named.

pandera is imported where a schema is built or checked, not with this module (which the code
location imports for its error type)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pandera.pandas as pa

from pipeline.data.candles import COLUMNS
from pipeline.data.timeframes import ms_to_iso, timeframe_ms


class CandleValidationError(ValueError):
    """A batch of candles broke a schema rule; nothing of it was written."""

    def __init__(
        self,
        market: str,
        timeframe: str,
        rule: str,
        offending: pd.DataFrame,
        other_rules: list[str] | None = None,
    ):
        self.market, self.timeframe, self.rule, self.offending = market, timeframe, rule, offending
        self.other_rules = other_rules or []
        rows = offending.head(3).to_dict("records")
        shown = "; ".join(_describe_row(row) for row in rows)
        more = f" (+{len(offending) - len(rows)} more)" if len(offending) > len(rows) else ""
        super().__init__(
            f"{market} {timeframe}: candles break rule '{rule}' in {len(offending)} row(s): "
            f"{shown}{more}"
            + (f"; also broken: {', '.join(self.other_rules)}" if self.other_rules else "")
        )


def refused(market: str, timeframe: str, rule: str, problems: list[str]) -> CandleValidationError:
    """The error for a batch refused before it is a candle frame (an unreadable file or page):
    the same type and message shape as a broken schema rule, each problem in words."""
    return CandleValidationError(market, timeframe, rule, pd.DataFrame({"problem": problems}))


def _describe_row(row: dict) -> str:
    parts = []
    for key in [*(c for c in COLUMNS if c in row), *(k for k in row if k not in COLUMNS)]:
        value = row[key]
        if key == "timestamp" and isinstance(value, int | np.integer):
            parts.append(f"timestamp={ms_to_iso(int(value))}")
        else:
            parts.append(f"{key}={value}")
    return "{" + ", ".join(parts) + "}"


def _finite_positive(series: pd.Series) -> pd.Series:
    return np.isfinite(series) & (series > 0)


def _schema(timeframe: str) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    step = timeframe_ms(timeframe)
    price = [pa.Check(_finite_positive, name="prices_positive_and_finite", ignore_na=False)]
    return pa.DataFrameSchema(
        {
            "timestamp": pa.Column(
                "int64",
                checks=[
                    pa.Check(lambda s: s % step == 0, name=f"timestamp_on_{timeframe}_grid"),
                    pa.Check(lambda s: ~s.duplicated(keep=False), name="timestamps_unique"),
                    pa.Check(lambda s: s.diff().fillna(1) > 0, name="timestamps_ascending"),
                ],
            ),
            "open": pa.Column("float64", checks=price, nullable=True),
            "high": pa.Column("float64", checks=price, nullable=True),
            "low": pa.Column("float64", checks=price, nullable=True),
            "close": pa.Column("float64", checks=price, nullable=True),
            "volume": pa.Column(
                "float64",
                nullable=True,
                checks=pa.Check(
                    lambda s: np.isfinite(s) & (s >= 0),
                    name="volume_non_negative_and_finite",
                    ignore_na=False,
                ),
            ),
        },
        checks=[
            pa.Check(
                lambda df: df["high"] >= np.maximum(df["open"], df["close"]),
                name="high_at_least_open_and_close",
            ),
            pa.Check(
                lambda df: df["low"] <= np.minimum(df["open"], df["close"]),
                name="low_at_most_open_and_close",
            ),
        ],
        strict=True,
        ordered=True,
        coerce=False,
    )


_SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def candle_schema(timeframe: str) -> pa.DataFrameSchema:
    if timeframe not in _SCHEMAS:
        _SCHEMAS[timeframe] = _schema(timeframe)
    return _SCHEMAS[timeframe]


def validate_candles(frame: pd.DataFrame, market: str, timeframe: str) -> pd.DataFrame:
    """Return `frame` if every rule holds; raise CandleValidationError naming the first rule broken.

    NaN prices fail `prices_positive_and_finite`: columns are declared nullable and checked
    with ignore_na=False, so a NaN is reported under the rule a reader would look for.
    """
    import pandera.pandas as pa

    schema = candle_schema(timeframe)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        # Column rules (grid, order, finiteness) first: they explain the relational failures.
        cases = err.failure_cases.sort_values(
            "schema_context", key=lambda s: s.ne("Column"), kind="stable"
        )
        rules = list(dict.fromkeys(str(rule) for rule in cases["check"]))
        rule = rules[0]
        rule_rows = cases[cases["check"].astype(str) == rule]
        index = pd.to_numeric(rule_rows["index"], errors="coerce").dropna().astype(int).unique()
        offending = frame.loc[frame.index.isin(index)] if len(index) else frame.head(0)
        if offending.empty:  # a column-level problem (missing column, wrong dtype)
            offending = pd.DataFrame({"problem": rule_rows["failure_case"].astype(str)})
        raise CandleValidationError(market, timeframe, rule, offending, rules[1:]) from None
    return frame


@dataclass(frozen=True)
class GapReport:
    """Missing candles between the first and last one present."""

    missing: int
    ranges: list[tuple[int, int]]  # (first missing open time, last missing open time), ms


def find_gaps(timestamps: np.ndarray, timeframe: str, limit: int = 20) -> GapReport:
    step = timeframe_ms(timeframe)
    ts = np.asarray(timestamps, dtype="int64")
    if ts.size < 2:
        return GapReport(0, [])
    jumps = np.diff(ts)
    where = np.nonzero(jumps > step)[0]
    missing = int(((jumps[where] // step) - 1).sum())
    ranges = [(int(ts[i] + step), int(ts[i + 1] - step)) for i in where[:limit]]
    return GapReport(missing, ranges)
