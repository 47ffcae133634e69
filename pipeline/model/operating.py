"""The operating point: which of a model's probabilities become trades.

Two filters, both fitted before the period they decide on:

- by rank: confidence max(p, 1 − p) at least `threshold`, the threshold fitted on validation
  to keep a `coverage` (the top k % by confidence), then frozen; 0.65 stays available as a
  fixed threshold;
- by expected value (optional): trade a side only where
  p · E[win] − (1 − p) · E[loss] > round trip + buffer, with E[win] and E[loss] in units of
  the candle's scale s_t = σ_t × √T (the label's volatility, known at t), estimated on the
  training rows' barrier outcomes (`fit_edge`). High-volatility candles clear the cost with
  less confidence than quiet ones, which is the point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pipeline.features.barriers import DOWN, UP


def sides(p_up: np.ndarray, threshold: float) -> np.ndarray:
    """+1 (long) where P(up) ≥ threshold, −1 (short) where P(down) ≥ threshold, else 0."""
    p_up = np.asarray(p_up, dtype="float64")
    out = np.zeros(p_up.shape, dtype=np.int8)
    out[p_up >= threshold] = 1
    out[1.0 - p_up >= threshold] = -1
    return out


@dataclass(frozen=True)
class Edge:
    """Mean gross move of a long's winning and losing outcomes, per unit of scale s_t."""

    win: float
    loss: float


def fit_edge(forward_return: np.ndarray, outcome: np.ndarray, scale: np.ndarray) -> Edge:
    """E[win] and E[loss] of a long, per unit of scale, from training rows' outcomes."""
    ok = np.isfinite(forward_return) & np.isfinite(scale) & (scale > 0)
    per_scale = np.abs(forward_return[ok]) / scale[ok]
    ups, downs = per_scale[outcome[ok] == UP], per_scale[outcome[ok] == DOWN]
    if len(ups) == 0 or len(downs) == 0:
        raise ValueError("no up or no down outcome among the training rows: cannot fit an edge")
    return Edge(win=float(ups.mean()), loss=float(downs.mean()))


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # confidence a side needs
    coverage: float | None = None  # the validation coverage the threshold was fitted to
    edge: Edge | None = None  # None: no expected-value filter
    cost: float = 0.001  # the round trip the expected value must clear
    buffer: float = 0.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.threshold <= 1.0:
            raise ValueError(f"the confidence threshold must lie in [0.5, 1], got {self.threshold}")

    def expected_values(self, p_up: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected gross return of a long and of a short, per row (NaN where scale is)."""
        if self.edge is None:
            raise ValueError("this operating point has no expected-value filter")
        up, down = self.edge.win * scale, self.edge.loss * scale
        return p_up * up - (1 - p_up) * down, (1 - p_up) * down - p_up * up

    def sides(self, p_up: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """+1 long, −1 short, 0 flat per row."""
        p_up = np.asarray(p_up, dtype=np.float64)
        out = sides(p_up, self.threshold)
        if self.edge is not None:
            if scale is None:
                raise ValueError("the expected-value filter needs each row's scale")
            ev_long, ev_short = self.expected_values(p_up, np.asarray(scale, dtype=np.float64))
            bar = self.cost + self.buffer
            # NaN compares False: a row without a scale does not trade.
            out[(out == 1) & ~(ev_long > bar)] = 0
            out[(out == -1) & ~(ev_short > bar)] = 0
        return out

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> OperatingPoint:
        edge = data.get("edge")
        return cls(
            threshold=float(data["threshold"]),  # type: ignore[arg-type]
            coverage=None if data.get("coverage") is None else float(data["coverage"]),  # type: ignore[arg-type]
            edge=Edge(**edge) if isinstance(edge, dict) else None,
            cost=float(data.get("cost", 0.001)),  # type: ignore[arg-type]
            buffer=float(data.get("buffer", 0.0)),  # type: ignore[arg-type]
        )
