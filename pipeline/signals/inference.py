"""Smart inference: the one code path from feature windows to explained decisions.

The live job calls `decide`; backtests and evaluation predict a segment through the model
contract (`pipeline.model.contract.predict`), the same one-window forward pass, and turn it
into sides with `sides`, so what was backtested is what trades. Probability of up →
confidence max(p, 1 − p) → long, short or flat by a threshold → an explanation: the features
that pushed this decision most, by gradient × input summed over the window. Every decision
carries the model id and a hash of its exact inputs; the same inputs give the same decision,
bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.model.contract import DEFAULT_THRESHOLD, probabilities, torch_threads
from pipeline.model.ensemble import Ensemble, member_mean
from pipeline.model.operating import OperatingPoint, sides
from pipeline.signals.sides import FLAT, LONG, SHORT  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # torch runs only for an LSTM: a boosting scorer's decision never loads it
    import torch


@dataclass(frozen=True)
class Explanation:
    feature: str
    attribution: float  # signed push towards the chosen side, in logit units


@dataclass(frozen=True)
class Decision:
    model_id: int | None
    market: str
    timestamp: object  # the window's last candle open time
    probability_up: float
    confidence: float
    side: int  # LONG, SHORT or FLAT
    threshold: float
    input_hash: str
    explanation: tuple[Explanation, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "market": self.market,
            "timestamp": str(self.timestamp),
            "probability_up": self.probability_up,
            "confidence": self.confidence,
            "side": self.side,
            "threshold": self.threshold,
            "input_hash": self.input_hash,
            "explanation": [
                {"feature": e.feature, "attribution": e.attribution} for e in self.explanation
            ],
        }


def input_hash(window: np.ndarray, features: list[str], model_id: int | None) -> str:
    """SHA-256 of the raw window (float32, C order), the feature names and the model id."""
    digest = hashlib.sha256()
    digest.update(str(model_id).encode())
    digest.update("\x1f".join(features).encode())
    digest.update(np.ascontiguousarray(window, dtype=np.float32).tobytes())
    return digest.hexdigest()


def attributions(model: torch.nn.Module | Ensemble, scaled: np.ndarray) -> np.ndarray:
    """Gradient × input of the logit, summed over the window: [n, F].

    Positive values push towards up. Cheap (one backward pass) and exact for what it claims:
    a first-order account of which inputs moved this logit. An ensemble's is the mean of its
    members' (each member's logit, in logit units like a single network's), so a feature
    that pushes every member the same way leads its explanation.
    """
    if isinstance(model, Ensemble):
        return member_mean([attributions(m, scaled) for m in model.members])
    import torch

    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    return (grad * x).sum(dim=1).detach().double().numpy()


def decide_many(
    model: torch.nn.Module | Ensemble, scaled: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """(P(up), side) for many SCALED windows [n, L, F] (an array or a lazy window array).

    Windows are evaluated one at a time, as live inference does: a batched LSTM differs in
    the last bits with the batch's size (measured: up to 4e-8), which could flip a decision
    sitting on the threshold. bench/inference.py measures what one window costs.
    """
    p_up = probabilities(model, scaled, batch_size=1)
    return p_up, sides(p_up, threshold)


def decide(
    model: torch.nn.Module | Ensemble,
    window: np.ndarray,
    scale: Callable[[np.ndarray], np.ndarray],
    features: list[str],
    *,
    model_id: int | None,
    market: str,
    timestamp: object,
    operating: OperatingPoint | None = None,
    ev_scale: float | None = None,
    top_k: int = 5,
) -> Decision:
    """One explained decision for one raw window [L, F] (features in `features` order).

    `ev_scale` is the candle's σ × √T, needed when the operating point filters by expected
    value."""
    operating = operating or OperatingPoint(threshold=DEFAULT_THRESHOLD)
    if window.ndim != 2 or window.shape[1] != len(features):
        raise ValueError(
            f"window has shape {window.shape}; expected (window, {len(features)}) for the "
            "model's feature list"
        )
    if not np.isfinite(window).all():
        raise ValueError(f"{market} {timestamp}: the feature window holds NaN or infinity")
    scaled = scale(window[None, ...]).astype(np.float32)
    p_up = float(probabilities(model, scaled, batch_size=1)[0])
    scale_row = None if ev_scale is None else np.array([ev_scale], dtype=np.float64)
    side = int(operating.sides(np.array([p_up]), scale_row)[0])
    with torch_threads(1):
        push = attributions(model, scaled)[0]
    towards = push if p_up >= 0.5 else -push  # towards the side it leans to, even when flat
    order = np.argsort(-towards, kind="stable")[:top_k]
    return Decision(
        model_id=model_id,
        market=market,
        timestamp=timestamp,
        probability_up=p_up,
        confidence=max(p_up, 1.0 - p_up),
        side=side,
        threshold=operating.threshold,
        input_hash=input_hash(window, features, model_id),
        explanation=tuple(Explanation(features[i], float(towards[i])) for i in order),
    )


def decide_scorer(
    scorer: Any,
    window: np.ndarray,
    *,
    market: str,
    timestamp: object,
    top_k: int = 5,
) -> Decision:
    """One explained decision of a portfolio model's scorer (`pipeline.model.scorer`) on a
    raw window [L, F]: the LSTM through `decide`; boosting on the window's last row, explained
    by its path attributions towards the side it leans to (logit units)."""
    if scorer.lstm is not None:
        lstm = scorer.lstm
        return decide(
            lstm.network,
            window,
            lstm.scaler.transform,
            lstm.features,
            model_id=scorer.model_id,
            market=market,
            timestamp=timestamp,
            operating=lstm.operating,
            top_k=top_k,
        )
    row = window[-1:]
    if not np.isfinite(row).all():
        raise ValueError(f"{market} {timestamp}: the feature row holds NaN or infinity")
    p_up = float(scorer.trees.predict_proba(row)[0])
    push = scorer.trees.credits(row[0])
    towards = push if p_up >= 0.5 else -push
    order = np.argsort(-towards, kind="stable")[:top_k]
    return Decision(
        model_id=scorer.model_id,
        market=market,
        timestamp=timestamp,
        probability_up=p_up,
        confidence=max(p_up, 1.0 - p_up),
        side=0,  # a portfolio model's side is its target weight's (the layer decides)
        threshold=0.5,
        input_hash=input_hash(row, scorer.features, scorer.model_id),
        explanation=tuple(Explanation(scorer.features[i], float(towards[i])) for i in order),
    )
