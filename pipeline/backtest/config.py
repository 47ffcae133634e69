"""Backtest settings: the costs and sizing a replay charges, checked once at the door."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.backtest.funding import DEFAULT_RATE, SETTLEMENT_INTERVAL_MS
from pipeline.data.timeframes import DAY_MS, timeframe_ms
from pipeline.features.barriers import VOL_WINDOW
from pipeline.features.labels import LabelRule

YEAR_MS = 365 * DAY_MS
TAKER_FEE, MAKER_FEE = 0.0005, 0.0002
# The fee levels every headline table is also shown at (a side).
FEE_SENSITIVITY = (0.0002, 0.0005, 0.0007)


@dataclass(frozen=True)
class BacktestConfig:
    """Costs default to Binance USDⓈ-M taker fees and the usual funding rate; exits to the
    label's rule (`barrier_k` None: time exits only)."""

    timeframe: str = "1h"
    horizon: int = 1  # time limit T: candles a decision holds at most
    barrier_k: float | None = None  # take-profit and stop at k × σ × √T (None: no barriers)
    vol_window: int = VOL_WINDOW
    fee: float = TAKER_FEE  # taker fee per side, fraction of notional
    maker: bool = False  # entries as limits at the next open (fill rule in engine.py)
    maker_fee: float = MAKER_FEE
    slippage_bps: float = 0.0  # per taker fill, always adverse
    # Per settlement (00/08/16 UTC) where no history is given: the usual rate, stated.
    funding_rate: float = DEFAULT_RATE
    position_size: float = 1.0  # fraction of equity committed per trade (margin)
    leverage: float = 1.0

    def __post_init__(self) -> None:
        timeframe_ms(self.timeframe)  # raises on an unknown timeframe
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least one candle, got {self.horizon}")
        if self.barrier_k is not None and self.barrier_k <= 0:
            raise ValueError(f"barrier_k must be positive or None, got {self.barrier_k}")
        if self.fee < 0 or self.maker_fee < 0 or self.slippage_bps < 0:
            raise ValueError("fee and slippage are costs: they cannot be negative")
        if not 0 < self.position_size <= 1:
            raise ValueError(f"position_size must be in (0, 1], got {self.position_size}")
        if self.leverage <= 0:
            raise ValueError(f"leverage must be positive, got {self.leverage}")

    @property
    def step_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    @property
    def exposure(self) -> float:
        """Notional per unit of equity: every return and cost of a trade scales with it."""
        return self.position_size * self.leverage

    @property
    def slippage(self) -> float:
        return self.slippage_bps / 10_000.0

    def exiting_by(self, rule: LabelRule, timeframe: str | None = None) -> BacktestConfig:
        """These costs, with `rule`'s exits (its time limit and barrier width)."""
        return replace(
            self,
            timeframe=timeframe or self.timeframe,
            horizon=rule.horizon,
            barrier_k=rule.barrier_k,
        )

    @property
    def entry_fee(self) -> float:
        return self.maker_fee if self.maker else self.fee

    @property
    def round_trip(self) -> float:
        """Fees and slippage of one trade in and out, as a fraction of notional."""
        entry_slippage = 0.0 if self.maker else self.slippage  # a limit fills at its price
        return self.entry_fee + self.fee + entry_slippage + self.slippage

    @property
    def funding_interval_ms(self) -> int:
        return SETTLEMENT_INTERVAL_MS

    @property
    def periods_per_year(self) -> float:
        return YEAR_MS / self.step_ms
