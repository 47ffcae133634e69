"""Class balance from training labels only: weights for the loss or for a sampler.

The default (`balance="loss"`) weights each class by n / (2 · n_class) in the loss. With up
and down near 50/50 it barely changes the optimum, but unlike a weighted sampler (drawing
with replacement, as `WeightedRandomSampler` does) every training window is seen exactly
once per epoch, so an epoch carries no sampling noise and no window is skipped (a draw with
replacement leaves out ~37 % of them). The weighted draw stays available
(`balance="sampler"`, seeded) for strongly unbalanced labels, e.g. with a dead zone.
"""

from __future__ import annotations

import numpy as np


def class_weights(y: np.ndarray) -> tuple[float, float]:
    """(weight of down, weight of up) = n / (2 · n_class); pass TRAINING labels only."""
    y = np.asarray(y)
    n_up = int((y == 1).sum())
    n_down = int((y == 0).sum())
    if n_up == 0 or n_down == 0:
        raise ValueError("both classes must occur in the training labels")
    n = n_up + n_down
    return n / (2 * n_down), n / (2 * n_up)


def sample_weights(y: np.ndarray) -> np.ndarray:
    """Per-window weights (each class summing to n / 2) for a weighted sampler."""
    down, up = class_weights(y)
    return np.where(np.asarray(y) == 1, up, down)
