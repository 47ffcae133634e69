"""Seed ensembles: N networks with the same settings and seeds seed, seed + 1, … that decide
as one model, by the mean of their probabilities.

The walk-forward evaluation (`pipeline.evaluation.tuned`) and a stored ensemble
(`pipeline.model.contract`, through `probabilities`) reduce their members' outputs with the
one function here, `member_mean`, so a stored ensemble's P(up) equals the evaluation's
ensemble's bit for bit on the same windows. torch is never imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# The size the validation preferred over the 2022–2023 refits (issue 11's note;
# `pipeline.evaluation.tuned.TuningConfig.ensemble` and `summary.ensemble_line`).
DEFAULT_ENSEMBLE = 3


def member_seeds(seed: int, size: int) -> list[int]:
    """The seeds of an ensemble of `size` started at `seed`, as the evaluation trains them."""
    if size < 1:
        raise ValueError(f"an ensemble needs at least one model, got {size}")
    return [seed + i for i in range(size)]


def member_mean(per_member: Sequence[np.ndarray]) -> np.ndarray:
    """The members' mean, element by element, in float64: an ensemble's P(up) from its
    members' (and its explanation from their attributions). The evaluation's ensemble and a
    stored one both call this, so their decisions agree bit for bit."""
    if len(per_member) == 0:
        raise ValueError("an ensemble's mean needs at least one member")
    return np.mean(np.asarray(per_member, dtype=np.float64), axis=0)


@dataclass(frozen=True)
class Ensemble:
    """The networks of one stored model, in member order, with their seeds."""

    members: tuple[torch.nn.Module, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.members or len(self.members) != len(self.seeds):
            raise ValueError(
                f"an ensemble needs one seed per member: {len(self.members)} members, "
                f"{len(self.seeds)} seeds"
            )

    def __len__(self) -> int:
        return len(self.members)

    def eval(self) -> Ensemble:
        for network in self.members:
            network.eval()
        return self
