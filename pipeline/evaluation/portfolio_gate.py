"""The promotion gate of a portfolio model: money on the half of validation that chose nothing.

Validation's first half chose the candidate's operating point; its second half (the judging
half) chose nothing, so its figures are not flattered by the choice. The gate reads them,
after taker fees, slippage and funding: net Sharpe above a floor and above the daily trend
rule's on the same candles through the same layer (rule 10 of DESIGN.md: beat the simplest
rule that pays), drawdown within a bound, enough fills to say anything, no liquidation, and
no worse than the production model on the same half. Classification figures are reported
beside it, not judged: the edge lives in the confident tail, where accuracy against the
majority class says little. The train − validation gap stays a bound for an LSTM (its training
control, rule 7); gradient boosting's fixed configuration reports its gap beside, not judged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.evaluation.gates import GateVerdict


@dataclass(frozen=True)
class PortfolioGateConfig:
    min_sharpe: float = 0.0  # net, annualised, on the judging half
    beat_trend: bool = True  # Sharpe above the trend rule's on the same half
    max_drawdown: float = 0.25
    min_trades: int = 10  # fills on the judging half
    max_gap: float = 0.15  # train − validation accuracy of an LSTM's stored epoch


def _sharpe(figures: dict[str, Any] | None) -> float:
    value = (figures or {}).get("sharpe")
    if value is None or (figures or {}).get("liquidated"):
        return -math.inf
    return float(value) if math.isfinite(float(value)) else -math.inf


def check_portfolio_gate(
    judged: dict[str, dict[str, Any]],
    production: dict[str, Any] | None,
    cfg: PortfolioGateConfig | None = None,
    fit: dict[str, Any] | None = None,
) -> GateVerdict:
    """`judged`: strategy → figures on the judging half (`candidate`, `trend` the rule);
    `production`: the production model's figures on the same half, if any; `fit`: the
    candidate's validation accuracy, majority accuracy and gap. Every failed bound is listed;
    the candidate passes only when the list is empty."""
    cfg = cfg or PortfolioGateConfig()
    candidate = judged["candidate"]
    sharpe = _sharpe(candidate)
    reasons = []
    if candidate.get("liquidated"):
        reasons.append("liquidated on the judging half")
    if not sharpe > cfg.min_sharpe:
        reasons.append(f"net Sharpe {_text(sharpe)} ≤ {cfg.min_sharpe:.2f}")
    trend = _sharpe(judged.get("trend"))
    if cfg.beat_trend and not sharpe > trend:
        reasons.append(f"net Sharpe {_text(sharpe)} ≤ the trend rule's {_text(trend)}")
    drawdown = float(candidate.get("max_drawdown") or 0.0)
    if drawdown > cfg.max_drawdown:
        reasons.append(f"drawdown {drawdown:.1%} > {cfg.max_drawdown:.1%}")
    trades = int(candidate.get("trades") or 0)
    if trades < cfg.min_trades:
        reasons.append(f"{trades} fills < {cfg.min_trades}")
    # The LSTM's training control; boosting's fixed configuration reports its gap instead.
    lstm = (fit or {}).get("scorer", "lstm") == "lstm"
    if fit is not None and lstm and fit.get("gap", 0.0) > cfg.max_gap:
        reasons.append(f"train − validation gap {fit['gap']:+.1%} > {cfg.max_gap:.0%}")
    if production is not None and sharpe < _sharpe(production):
        reasons.append(
            f"net Sharpe {_text(sharpe)} below production's {_text(_sharpe(production))} on "
            "the same candles"
        )
    return GateVerdict(
        passed=not reasons,
        reasons=reasons,
        candidate={k: v for k, v in candidate.items() if isinstance(v, int | float)},
        production={k: v for k, v in production.items() if isinstance(v, int | float)}
        if production is not None
        else None,
        config=asdict(cfg),
    )


def _text(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "undefined"
