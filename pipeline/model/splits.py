"""Chronological train / validation / test splits by decision time, with an embargo.

Convention (the same as feature selection's): a split ending at `end` keeps windows whose
label resolves by then, i.e. decision time t with t + horizon candles ≤ end. The next split's
first decision time is at least `window + horizon` candles after the previous split's last,
so its first window row opens only after the last label of the previous split has closed:
no training label overlaps a validation input, and no validation label a test input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.labels import DEFAULT_HORIZON
from pipeline.model.dataset import WindowSet


@dataclass(frozen=True)
class SplitConfig:
    """Dates are ISO strings (UTC). `test_end=None`: no test split."""

    train_start: str
    train_end: str
    val_end: str
    test_end: str | None = None
    window: int = 8  # the model's default (pipeline.model.config.TrainConfig)
    horizon: int = DEFAULT_HORIZON
    timeframe: str = "1h"
    embargo: int | None = None  # candles; never less than window + horizon

    @property
    def embargo_candles(self) -> int:
        return max(self.embargo or 0, self.window + self.horizon)


@dataclass(frozen=True, eq=False)
class Splits:
    train: WindowSet
    validation: WindowSet
    test: WindowSet | None
    boundaries: dict[str, object]

    def record(self) -> dict[str, object]:
        """Boundaries plus window counts: what a training run stores beside its model."""
        counts = {"train": len(self.train), "validation": len(self.validation)}
        if self.test is not None:
            counts["test"] = len(self.test)
        return {**self.boundaries, "windows": counts}


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _ranges(cfg: SplitConfig) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    step = pd.Timedelta(milliseconds=timeframe_ms(cfg.timeframe))
    resolve = cfg.horizon * step
    embargo = cfg.embargo_candles * step
    ranges = {"train": (_utc(cfg.train_start), _utc(cfg.train_end) - resolve)}
    ranges["validation"] = (ranges["train"][1] + embargo, _utc(cfg.val_end) - resolve)
    if cfg.test_end is not None:
        ranges["test"] = (ranges["validation"][1] + embargo, _utc(cfg.test_end) - resolve)
    for name, (first, last) in ranges.items():
        if first > last:
            raise ValueError(f"the {name} split is empty: first decision {first} after last {last}")
    return ranges


def split_boundaries(cfg: SplitConfig) -> dict[str, object]:
    """First and last decision time of each split, the embargo, and the config: for the record."""
    ranges = _ranges(cfg)
    return {
        "embargo_candles": cfg.embargo_candles,
        **{
            name: {"first_decision": first.isoformat(), "last_decision": last.isoformat()}
            for name, (first, last) in ranges.items()
        },
        "config": asdict(cfg),
    }


def chronological_split(windows: WindowSet, cfg: SplitConfig) -> Splits:
    """Train / validation / (test) windows by decision time, embargoed as the module says."""
    if windows.window != cfg.window:
        raise ValueError(f"windows of {windows.window} candles, split configured for {cfg.window}")
    ranges = _ranges(cfg)
    parts = {
        name: windows.take((windows.timestamp >= first) & (windows.timestamp <= last))
        for name, (first, last) in ranges.items()
    }
    return Splits(parts["train"], parts["validation"], parts.get("test"), split_boundaries(cfg))
