"""Target weights at one decision time: scores and volatilities → fractions of equity.

Stateless, one decision at a time: the whole-history loop (`pipeline.portfolio.layer.decide`)
calls this same function, so a backtest and a live process see the same weights bit for bit.
The rules and their order are in `pipeline.portfolio.config`.
"""

from __future__ import annotations

import numpy as np

from pipeline.portfolio.config import PortfolioConfig


def _as_vector(name: str, values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(f"{name} must be one value per market (1-D), got shape {out.shape}")
    return out


def _picked(x: np.ndarray, valid: np.ndarray, cfg: PortfolioConfig) -> np.ndarray:
    """Which valid markets take a position, from their (demeaned) scores `x`."""
    if cfg.selection == "all":
        return valid & (x != 0.0)
    if cfg.selection == "threshold":
        return valid & (np.abs(x) >= cfg.threshold)
    # top_k: stable sorts break ties by the lower column index.
    index = np.flatnonzero(valid)
    picked = np.zeros(x.shape, dtype=bool)
    highest = index[np.argsort(-x[index], kind="stable")[: cfg.top_k]]
    lowest = index[np.argsort(x[index], kind="stable")[: cfg.top_k]]
    picked[highest[x[highest] > 0.0]] = True
    picked[lowest[x[lowest] < 0.0]] = True
    return picked


def _cap_net(w: np.ndarray, cap: float) -> np.ndarray:
    """Scale the side in excess so that |Σw| = cap; the other side is untouched."""
    net = w.sum()
    if abs(net) <= cap:
        return w
    longs, shorts = w > 0.0, w < 0.0
    long_sum, short_sum = w[longs].sum(), -w[shorts].sum()
    out = w.copy()
    if net > 0.0:
        out[longs] *= min(1.0, (cap + short_sum) / long_sum)
    else:
        out[shorts] *= min(1.0, (cap + long_sum) / short_sum)
    return out


def target_weights(scores: np.ndarray, vol: np.ndarray, cfg: PortfolioConfig) -> np.ndarray:
    """Every market's target weight at one decision time (0 where it has no valid input).

    `scores[m]` ∈ [-1, 1] or NaN (no score); `vol[m]` the market's annualised volatility known
    at the decision time (NaN, 0 or inf: no position).
    """
    s = _as_vector("scores", scores)
    v = _as_vector("vol", vol)
    if s.shape != v.shape:
        raise ValueError(f"scores and vol differ in length: {s.shape[0]} vs {v.shape[0]}")
    out_of_range = ~np.isnan(s) & ~(np.abs(s) <= 1.0)
    if out_of_range.any():
        bad = np.flatnonzero(out_of_range)
        raise ValueError(f"scores must lie in [-1, 1] or be NaN; markets {bad.tolist()}: {s[bad]}")
    m = s.shape[0]
    if m == 0:
        return np.zeros(0)
    n = cfg.sleeves(m)
    valid = np.isfinite(s) & np.isfinite(v) & (v > 0.0)
    x = np.where(valid, s, 0.0)
    if cfg.neutral and valid.any():
        x = np.where(valid, x - x[valid].mean(), 0.0)
    size = x if cfg.conviction else np.sign(x)
    scale = cfg.target_vol / np.where(valid, v, 1.0) if cfg.sizing == "inverse_vol" else 1.0
    w = np.where(_picked(x, valid, cfg), size * scale / n, 0.0)
    if cfg.long_only:
        w = np.maximum(w, 0.0)
    cap = cfg.cap_per_market(m)
    w = np.clip(w, -cap, cap)
    if cfg.gross_cap is not None:
        gross = np.abs(w).sum()
        if gross > cfg.gross_cap:
            w = w * (cfg.gross_cap / gross)
    if cfg.net_cap is not None:
        w = _cap_net(w, cfg.net_cap)
    # + 0.0 turns −0.0 into 0.0: stored states (PostgreSQL numeric has no −0) stay bit-equal.
    return w + 0.0
