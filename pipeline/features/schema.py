"""The feature matrix schema (pandera): the registry's columns in order, finite after warm-up.

pandera is imported where the schema is built or checked, not with this module."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.registry import REGISTRY

if TYPE_CHECKING:
    import pandera.pandas as pa


class FeatureValidationError(ValueError):
    pass


def position_in_run(frame: pd.DataFrame, timeframe: str) -> np.ndarray:
    """Per row, how many candles precede it in its market's contiguous run (0 after a gap)."""
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    new_run = (frame["market"] != frame["market"].shift()) | (frame["timestamp"].diff() != step)
    run_id = new_run.cumsum()
    return frame.groupby(run_id).cumcount().to_numpy()


def _schema(timeframe: str) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    columns: dict[str, pa.Column] = {
        "market": pa.Column(str),
        "timestamp": pa.Column("datetime64[ns, UTC]"),
    }
    for spec in REGISTRY:
        columns[spec.name] = pa.Column(
            "float64",
            nullable=True,
            checks=pa.Check(lambda s: ~np.isinf(s), name="no_infinity", ignore_na=True),
        )
    warmups = {spec.name: spec.warmup_at(timeframe) for spec in REGISTRY}

    def finite_after_warmup(frame: pd.DataFrame) -> pd.Series:
        position = position_in_run(frame, timeframe)
        ok = np.ones(len(frame), dtype=bool)
        for name, warmup in warmups.items():
            ok &= ~(frame[name].isna().to_numpy() & (position >= warmup))
        return pd.Series(ok, index=frame.index)

    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(finite_after_warmup, name="finite_after_warmup")],
        strict=True,
        ordered=True,
    )


def _late_nan(frame: pd.DataFrame, timeframe: str) -> tuple[str, pd.DataFrame] | None:
    """The first feature that is NaN after its warm-up, with its offending rows."""
    position = position_in_run(frame, timeframe)
    for spec in REGISTRY:
        bad = frame[spec.name].isna().to_numpy() & (position >= spec.warmup_at(timeframe))
        if bad.any():
            return spec.name, frame.loc[bad, ["market", "timestamp"]]
    return None


def validate_features(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Raise FeatureValidationError naming the rule, the column and the first offending rows."""
    import pandera.pandas as pa

    try:
        return _schema(timeframe).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        first = cases.iloc[0]
        rule, column = str(first["check"]), first["column"]
        index = pd.to_numeric(cases["index"], errors="coerce").dropna().astype(int)
        shown = frame.loc[frame.index.isin(index), ["market", "timestamp"]]
        count = len(cases)
        if rule == "finite_after_warmup":
            late = _late_nan(frame, timeframe)
            if late is not None:
                column, shown = late
                count = len(shown)
        raise FeatureValidationError(
            f"features ({timeframe}) break rule '{rule}' on column {column!r} in {count} "
            f"row(s); first: {shown.head(3).astype(str).to_dict('records')}"
        ) from None
