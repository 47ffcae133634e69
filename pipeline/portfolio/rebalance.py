"""Turnover control: which markets are ordered to their new target (no-trade band, min hold).

The state between two decisions is small and explicit (`LayerState`) so that live trading can
store it (PostgreSQL, as JSON) and resume with the weights the whole-history loop would give.
The rules are in `pipeline.portfolio.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.portfolio.config import PortfolioConfig

# "Never ordered": large enough for any min_hold, small enough to count up without overflow
# and to survive JSON and PostgreSQL as an exact integer.
NEVER = 1_000_000_000


@dataclass(frozen=True, eq=False)
class LayerState:
    """What the layer remembers after a decision, per market.

    `standing`: the last target the market was ordered to (0 before its first order).
    `since`: decisions since it was last ordered, counted at the decision just made (0: ordered
    at it; `NEVER` before its first order).
    """

    standing: np.ndarray
    since: np.ndarray

    def __post_init__(self) -> None:
        standing = np.array(self.standing, dtype=np.float64)
        since = np.array(self.since, dtype=np.int64)
        if standing.ndim != 1 or since.shape != standing.shape:
            raise ValueError(
                f"a layer state is two equal 1-D arrays, got {standing.shape} and {since.shape}"
            )
        if not np.isfinite(standing).all():
            raise ValueError("standing targets must be finite")
        if (since < 0).any():
            raise ValueError("`since` counts must be ≥ 0")
        standing += 0.0  # no −0.0: a JSON/PostgreSQL round trip gives back the same bits
        standing.flags.writeable = False
        since.flags.writeable = False
        object.__setattr__(self, "standing", standing)
        object.__setattr__(self, "since", since)

    @classmethod
    def initial(cls, m: int) -> LayerState:
        """Before the first decision: nothing ordered, nothing held."""
        return cls(standing=np.zeros(m), since=np.full(m, NEVER, dtype=np.int64))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerState):
            return NotImplemented
        return np.array_equal(self.standing, other.standing) and np.array_equal(
            self.since, other.since
        )

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        """Plain lists; floats written by Python's json read back bit for bit."""
        return {"standing": self.standing.tolist(), "since": self.since.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerState:
        return cls(
            standing=np.asarray(data["standing"], dtype=np.float64),
            since=np.asarray(data["since"], dtype=np.int64),
        )


def rebalance(
    targets: np.ndarray, state: LayerState, cfg: PortfolioConfig
) -> tuple[np.ndarray, np.ndarray, LayerState]:
    """(orders, standing, next state) for one decision.

    `orders[m]`: market m is ordered to `targets[m]` at this decision; `standing[m]`: what the
    portfolio now aims to hold (the new target where ordered, else the old standing target).
    """
    new = np.asarray(targets, dtype=np.float64)
    if new.shape != state.standing.shape:
        raise ValueError(f"{new.shape} targets for a state of {state.standing.shape[0]} markets")
    if not np.isfinite(new).all():
        raise ValueError("targets must be finite")
    elapsed = np.minimum(state.since + 1, NEVER)
    orders = (elapsed >= cfg.min_hold) & (np.abs(new - state.standing) > cfg.band)
    standing = np.where(orders, new, state.standing) + 0.0
    since = np.where(orders, 0, elapsed)
    return orders, standing, LayerState(standing=standing, since=since)
