"""Labels: which side a trade entered at the next open would have won, after its costs.

Two kinds of target, one rule object (`LabelRule`):

- **Barrier classes** (the default): one rule for the labels and the backtest's exits
  (`pipeline.features.barriers`): barriers at k × σ × √T, a time limit of T candles, a dead
  zone of the round trip + a margin. Rows whose outcome pays neither side (NO_TRADE) are left
  out of training (label NaN), like rows whose outcome is not known yet; their decisions are
  still made and traded.
- **Forward risk-adjusted return** (`LabelRule.forward(H)`): the return of a position entered
  at the next open and held H candles, divided by σ_t × √H (known at t). The label is its
  sign (no barriers, no dead zone, no cost: a portfolio pays its costs on traded notional,
  not per round trip), or, `cross_sectional`, whether it beats the median of the markets'
  risk-adjusted returns at the same decision time. A classifier's P(up) on it is then a
  score whose distance from ½ is its conviction (`2p − 1`), which the portfolio layer sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.features.barriers import (
    NO_TRADE,
    VOL_WINDOW,
    barrier_outcomes,
    barrier_widths,
)

# The default rule (time limit, barrier width, margin): what `pipeline.evaluation.label_choice`
# chose on the first walk-forward fit window (five sample markets, to 2021-12-31, nothing of
# 2022–2023 read): `bench/label_choice.py` prints every rule's validation figures.
DEFAULT_HORIZON = 24
DEFAULT_BARRIER_K = 1.0
DEFAULT_MARGIN = 0.0
ROUND_TRIP = 0.001  # taker 0.05 % a side, in and out
# The forward target's holding horizon, in days (fixed before any look: a week of trading
# days, the scale the trend rule holds positions at).
FORWARD_DAYS = 5.0


@dataclass(frozen=True)
class LabelRule:
    """How a candle is labelled, and (the same settings) how the backtest exits."""

    horizon: int = DEFAULT_HORIZON  # time limit T, candles
    barrier_k: float | None = DEFAULT_BARRIER_K  # None: no barriers, time exits only
    margin: float = DEFAULT_MARGIN  # dead zone beyond the round trip
    cost: float = ROUND_TRIP
    vol_window: int = VOL_WINDOW
    # Forward targets only: rank each decision time's risk-adjusted returns across markets.
    cross_sectional: bool = False

    @classmethod
    def forward(cls, horizon: int, cross_sectional: bool = False) -> LabelRule:
        """The forward risk-adjusted return target over `horizon` candles (see the module)."""
        return cls(
            horizon=horizon, barrier_k=None, margin=0.0, cost=0.0, cross_sectional=cross_sectional
        )

    @property
    def kind(self) -> str:
        """`barrier`, `forward` or `forward_rank`: what the label says."""
        if self.cross_sectional:
            return "forward_rank"
        return "barrier" if self.barrier_k is not None or self.cost > 0 else "forward"

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("the label horizon must be at least one candle")
        if self.barrier_k is not None and self.barrier_k <= 0:
            raise ValueError(f"barrier_k must be positive or None, got {self.barrier_k}")
        if self.margin < 0 or self.cost < 0:
            raise ValueError("the margin and the cost must be non-negative")
        if self.cross_sectional and (self.barrier_k is not None or self.cost or self.margin):
            raise ValueError(
                "a cross-sectional target ranks forward returns: no barriers, cost or margin"
            )

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> LabelRule:
        """A stored rule; models stored before barriers carry only a horizon (time exits)."""
        data = dict(data or {})
        if "barrier_k" not in data:
            return cls(horizon=int(data.get("horizon", 1)), barrier_k=None, cost=0.0)
        return cls(**{k: data[k] for k in asdict(cls()) if k in data})  # type: ignore[arg-type]


def market_scale(candles: pd.DataFrame, timeframe: str, rule: LabelRule) -> np.ndarray:
    """Per candle, σ_t × √T: the move a trade decided at t can expect, known at t's close."""
    return barrier_widths(
        candles["timestamp"].to_numpy(dtype="int64"),
        candles["close"].to_numpy(dtype="float64"),
        step_ms=timeframe_ms(timeframe),
        k=1.0,
        horizon=rule.horizon,
        vol_window=rule.vol_window,
    )


def market_outcomes(
    candles: pd.DataFrame, timeframe: str, rule: LabelRule, scale: np.ndarray | None = None
):
    """The barrier outcomes of one market's candles under `rule` (`scale`: its
    `market_scale`, when the caller has it already)."""
    step = timeframe_ms(timeframe)
    ts = candles["timestamp"].to_numpy(dtype="int64")
    o, h, lo, c = (candles[x].to_numpy(dtype="float64") for x in ("open", "high", "low", "close"))
    if scale is None:
        scale = market_scale(candles, timeframe, rule)
    width = np.full(len(ts), np.inf) if rule.barrier_k is None else rule.barrier_k * scale
    return barrier_outcomes(
        ts,
        o,
        h,
        lo,
        c,
        step_ms=step,
        width=width,
        horizon=rule.horizon,
        cost=rule.cost,
        margin=rule.margin,
    )


def class_balance(labels: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows, labelled rows and the share of ups per group (e.g. market and split)."""
    grouped = labels.groupby(by, sort=False)["label"]
    table = pd.DataFrame(
        {
            "rows": grouped.size(),
            "labelled": grouped.count(),
            "up_share": grouped.mean(),
        }
    )
    return table.reset_index()


LABEL_COLUMNS = ("forward_return", "outcome", "label", "scale")  # what `attach_labels` adds


def attach_labels(
    features: pd.DataFrame,
    candles: dict[str, pd.DataFrame],
    timeframe: str,
    rule: LabelRule,
) -> pd.DataFrame:
    """The long feature frame with `forward_return`, `outcome`, `label` and `scale` added.

    `forward_return` is a long's gross return to its barrier exit; `outcome` is 1 (up),
    0 (down), −1 (no trade) or NaN (unknown); `label` is `outcome` without the no-trades;
    `scale` is σ_t × √T (`market_scale`), known at t, for the expected-value filter. With a
    cross-sectional rule the outcome is 1 where the market's `forward_return / scale` is
    above the median of the markets known at that time, 0 below (NaN where fewer than two
    markets are known, or on the median itself).
    """
    parts = []
    for symbol, frame in candles.items():
        scale = market_scale(frame, timeframe, rule)
        out = market_outcomes(frame, timeframe, rule, scale)
        parts.append(
            pd.DataFrame(
                {
                    "market": symbol,
                    "timestamp": pd.to_datetime(frame["timestamp"], unit="ms", utc=True),
                    "forward_return": out.long_return,
                    "outcome": out.label,
                    "label": np.where(out.label == NO_TRADE, np.nan, out.label),
                    "scale": scale,
                }
            )
        )
    labels = pd.concat(parts, ignore_index=True)
    if rule.cross_sectional:
        labels = _ranked(labels)
    merged = features.merge(labels, on=["market", "timestamp"], how="left", validate="1:1")
    if merged["forward_return"].isna().all() and len(merged):
        raise ValueError("no feature row matched a candle: markets or timestamps disagree")
    return merged


def _ranked(labels: pd.DataFrame) -> pd.DataFrame:
    """Outcome 1 above the decision time's median risk-adjusted return, 0 below."""
    z = labels["forward_return"] / labels["scale"]
    by_time = z.groupby(labels["timestamp"])
    median = by_time.transform("median")
    known = by_time.transform("count") >= 2
    above = np.where(z > median, 1.0, np.where(z < median, 0.0, np.nan))
    outcome = np.where(known & z.notna() & median.notna(), above, np.nan)
    return labels.assign(outcome=outcome, label=outcome)
