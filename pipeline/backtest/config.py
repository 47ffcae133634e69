"""Backtest settings: the costs and sizing a replay charges, checked once at the door."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.timeframes import DAY_MS, HOUR_MS, timeframe_ms

YEAR_MS = 365 * DAY_MS
FUNDING_INTERVAL_MS = 8 * HOUR_MS


@dataclass(frozen=True)
class BacktestConfig:
    """Costs default to Binance USDⓈ-M taker fees; funding is a parameter (the data has none)."""

    timeframe: str = "1h"
    horizon: int = 1  # hold H candles after each decision
    fee: float = 0.0005  # taker fee per side, fraction of notional
    slippage_bps: float = 0.0  # per side, always adverse
    funding_rate: float = 0.0  # per 8 hours; longs pay, shorts receive when positive
    position_size: float = 1.0  # fraction of equity committed per trade (margin)
    leverage: float = 1.0

    def __post_init__(self) -> None:
        timeframe_ms(self.timeframe)  # raises on an unknown timeframe
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least one candle, got {self.horizon}")
        if self.fee < 0 or self.slippage_bps < 0:
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

    @property
    def funding_per_candle(self) -> float:
        """Funding as a fraction of notional for one candle held (pro rata of the 8h rate)."""
        return self.funding_rate * self.step_ms / FUNDING_INTERVAL_MS

    @property
    def periods_per_year(self) -> float:
        return YEAR_MS / self.step_ms
