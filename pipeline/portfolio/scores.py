"""A scorer's output as the layer reads it: P(up) → a score in [−1, 1] sized by conviction.

A model's P(up) becomes the score 2p − 1 (its distance from ½ is its conviction), normalised
by a scale fitted on validation (`ScoreScale`: the 90th percentile of |score|), so that a
full-conviction score is ±1 whatever the model's calibration: the portfolio layer sizes
positions by it and selects by a threshold on it. The blend is the mean of normalised scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE_QUANTILE = 0.9


def score_from_probability(p_up: np.ndarray) -> np.ndarray:
    """2p − 1: positive for up, its size the model's conviction."""
    return 2.0 * np.asarray(p_up, dtype=np.float64) - 1.0


@dataclass(frozen=True)
class ScoreScale:
    """|score| at the `SCALE_QUANTILE` of the validation scores: what counts as full
    conviction. Fitted on validation only; a record keeps it so live scores alike."""

    scale: float

    @classmethod
    def fit(cls, scores: np.ndarray) -> ScoreScale:
        size = np.abs(np.asarray(scores, dtype=np.float64))
        size = size[np.isfinite(size)]
        if size.size == 0:
            raise ValueError("no finite validation scores to fit a score scale on")
        scale = float(np.quantile(size, SCALE_QUANTILE))
        return cls(scale if scale > 0 else 1.0)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(scores, dtype=np.float64) / self.scale, -1.0, 1.0)


def blend(*scores: np.ndarray) -> np.ndarray:
    """The mean of normalised scores (NaN where any is missing)."""
    return np.mean(np.stack(scores), axis=0)
