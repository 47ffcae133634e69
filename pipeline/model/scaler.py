"""Per-feature robust standardisation, fitted on the rows of training windows only.

Median / IQR rather than mean / std: returns, volatilities and volume z-scores are heavy
tailed, and a few crash candles would otherwise set the scale of every feature. The IQR is
divided by 1.349 so a Gaussian feature comes out with unit standard deviation, and scaled
values are clipped (±5 by default) so one extreme candle cannot saturate the LSTM's gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.model.dataset import WindowSet

_IQR_TO_SIGMA = 1.349
_TINY = 1e-12


@dataclass(frozen=True, eq=False)
class Scaler:
    """(x − center) / scale, clipped; JSON-serialisable through `to_dict` / `from_dict`."""

    center: np.ndarray  # float64 [F]
    scale: np.ndarray  # float64 [F], > 0
    features: tuple[str, ...]
    clip: float | None = 5.0

    @classmethod
    def fit(cls, train: WindowSet, clip: float | None = 5.0) -> Scaler:
        """Fit on every row inside at least one training window (each row counted once)."""
        rows = train.X.values[train.X.row_mask()]
        return cls.fit_rows(rows, train.features, clip)

    @classmethod
    def fit_rows(
        cls, rows: np.ndarray, features: tuple[str, ...], clip: float | None = 5.0
    ) -> Scaler:
        if len(rows) == 0:
            raise ValueError("no training rows to fit the scaler on")
        rows = np.asarray(rows, dtype=np.float64)
        q25, median, q75 = np.percentile(rows, [25, 50, 75], axis=0)
        scale = (q75 - q25) / _IQR_TO_SIGMA
        # Binary or nearly constant features have no IQR: fall back to std, then to 1.
        std = rows.std(axis=0)
        scale = np.where(scale > _TINY, scale, np.where(std > _TINY, std, 1.0))
        return cls(median, scale, tuple(features), clip)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale an array whose last axis is the features; returns float32."""
        out = (np.asarray(values, dtype=np.float64) - self.center) / self.scale
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        return out.astype(np.float32)

    def apply(self, windows: WindowSet) -> WindowSet:
        """The same windows over scaled rows (rows are scaled once, not per window)."""
        if tuple(windows.features) != self.features:
            raise ValueError("the windows' features differ from the scaler's")
        return windows.with_values(self.transform(windows.X.values))

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "robust",
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "features": list(self.features),
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Scaler:
        if data.get("kind", "robust") != "robust":
            raise ValueError(f"unknown scaler kind {data['kind']!r}")
        return cls(
            np.asarray(data["center"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            tuple(data["features"]),
            data.get("clip"),
        )
