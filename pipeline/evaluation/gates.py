"""The promotion gate: a candidate goes live only if its validation backtest clears every bound
and it is no worse than the production model on the same candles.

The bounds suit barrier exits: a win and a loss are of similar size (k × σ × √T either way),
so the profit factor carries the edge and the win rate is a sanity floor. The validation
period also chose the operating point (the best of its options), so these figures lean
optimistic: the walk-forward test (`signals evaluate`) is where a model's figure is honest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateConfig:
    min_total_return: float = 0.0  # net of costs, over the validation period
    min_profit_factor: float = 1.1  # net winners / net losers
    min_win_rate: float = 0.45  # share of trades with net return > 0
    max_drawdown: float = 0.25  # as a positive fraction of equity
    min_trades: int = 30  # fewer trades say nothing either way (the operating choice's floor)
    # The fit itself, on validation: a model no better than the majority class, or one that
    # learnt its training set by heart, has no edge for its backtest to show.
    require_beats_majority: bool = True
    max_gap: float = 0.15  # train − validation accuracy of the stored epoch
    # Live evidence before money: this many candles decided in shadow by the candidate, each
    # equal to the backtest path's decision on the same candle (0: not required).
    min_shadow_candles: int = 0


@dataclass
class GateVerdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    candidate: dict[str, float] = field(default_factory=dict)
    production: dict[str, float] | None = None
    config: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _figures(metrics: dict[str, float]) -> dict[str, float]:
    keys = ("total_return", "win_rate", "profit_factor", "max_drawdown", "trades", "sharpe")
    return {k: float(metrics[k]) for k in keys if k in metrics}


def check_gate(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    cfg: GateConfig | None = None,
    fit: dict[str, float] | None = None,
    shadow: tuple[int, int] | None = None,
) -> GateVerdict:
    """Every failed bound is listed; the candidate passes only when the list is empty.

    `fit` holds the candidate's validation classification figures (`val_accuracy`,
    `val_majority_accuracy`, `gap`), judged beside its backtest. `shadow`: (candles the
    candidate decided in shadow and the backtest path decided too, how many of those equal
    the backtest's), judged when `min_shadow_candles` asks for them."""
    cfg = cfg or GateConfig()
    reasons = []
    if cfg.min_shadow_candles > 0:
        compared, equal = shadow or (0, 0)
        if equal < cfg.min_shadow_candles:
            reasons.append(
                f"{equal} shadow candles equal to the backtest's decisions < "
                f"{cfg.min_shadow_candles} required"
            )
        if equal < compared:
            reasons.append(f"{compared - equal} shadow decisions differ from the backtest's")
    if fit is not None:
        accuracy, majority = fit["val_accuracy"], fit["val_majority_accuracy"]
        if cfg.require_beats_majority and not accuracy > majority:
            reasons.append(
                f"validation accuracy {accuracy:.2%} ≤ the majority class's {majority:.2%}"
            )
        if fit["gap"] > cfg.max_gap:
            reasons.append(f"train − validation gap {fit['gap']:+.1%} > {cfg.max_gap:.0%}")
    trades = candidate.get("trades", 0)
    if trades < cfg.min_trades:
        reasons.append(f"{int(trades)} trades < {cfg.min_trades}")
    if candidate["total_return"] <= cfg.min_total_return:
        reasons.append(f"net return {candidate['total_return']:+.2%} ≤ {cfg.min_total_return:+.2%}")
    profit_factor = candidate.get("profit_factor", float("nan"))
    if not profit_factor >= cfg.min_profit_factor:  # NaN (no trade) fails too
        reasons.append(f"profit factor {profit_factor:.2f} < {cfg.min_profit_factor:.2f}")
    if candidate["win_rate"] < cfg.min_win_rate:
        reasons.append(f"win rate {candidate['win_rate']:.1%} < {cfg.min_win_rate:.1%}")
    if candidate["max_drawdown"] > cfg.max_drawdown:
        reasons.append(f"drawdown {candidate['max_drawdown']:.1%} > {cfg.max_drawdown:.1%}")
    if production is not None and candidate["total_return"] < production["total_return"]:
        reasons.append(
            f"net return {candidate['total_return']:+.2%} below production's "
            f"{production['total_return']:+.2%} on the same candles"
        )
    return GateVerdict(
        passed=not reasons,
        reasons=reasons,
        candidate=_figures(candidate),
        production=_figures(production) if production is not None else None,
        config=asdict(cfg),
    )
