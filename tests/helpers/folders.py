"""Candle folders in the sample format, written for a test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_folder(path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """A candle folder in the sample format (gzip CSV per market id)."""
    path.mkdir(parents=True, exist_ok=True)
    for market, frame in frames.items():
        frame.to_csv(path / f"{market}.csv.gz", index=False)
    return path
