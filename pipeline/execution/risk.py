"""The limits the position manager trades within, and the rule that turns decisions into the
side to hold (the backtest's rule, so live and replay hold the same positions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.signals.sides import FLAT

MARGIN_MODES = ("isolated", "cross")


@dataclass(frozen=True)
class RiskConfig:
    """Sizing and limits. A position's margin is `risk_fraction` of equity, its notional that
    times `leverage`, capped at `max_notional` (quote currency) per market."""

    risk_fraction: float = 0.1
    leverage: int = 1
    margin_mode: str = "isolated"
    max_notional: float = 25_000.0
    daily_loss_limit: float = 0.05  # of the UTC day's starting equity; then flat till tomorrow
    horizon: int = 1  # candles a decision holds its position (the model's label horizon)
    kill_switch: bool = False
    kill_file: Path | None = None  # trading stops while this file exists

    def __post_init__(self) -> None:
        if not 0 < self.risk_fraction <= 1:
            raise ValueError(f"risk_fraction must be in (0, 1], got {self.risk_fraction}")
        if not 1 <= self.leverage <= 125:
            raise ValueError(f"leverage must be 1–125, got {self.leverage}")
        if self.margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin_mode must be one of {MARGIN_MODES}")
        if self.max_notional <= 0:
            raise ValueError("max_notional must be positive")
        if not 0 < self.daily_loss_limit <= 1:
            raise ValueError("daily_loss_limit must be in (0, 1]")
        if self.horizon < 1:
            raise ValueError("horizon must be at least one candle")

    @classmethod
    def from_env(cls, home: Path, environ: dict[str, str] | None = None, **overrides) -> RiskConfig:
        """SIGNALS_RISK_FRACTION, _LEVERAGE, _MARGIN_MODE, _MAX_NOTIONAL, _DAILY_LOSS_LIMIT,
        SIGNALS_KILL_SWITCH (1/true) and the kill file $SIGNALS_HOME/KILL_SWITCH."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "risk_fraction": float(env.get("SIGNALS_RISK_FRACTION", cls.risk_fraction)),
            "leverage": int(env.get("SIGNALS_LEVERAGE", cls.leverage)),
            "margin_mode": env.get("SIGNALS_MARGIN_MODE", cls.margin_mode),
            "max_notional": float(env.get("SIGNALS_MAX_NOTIONAL", cls.max_notional)),
            "daily_loss_limit": float(env.get("SIGNALS_DAILY_LOSS_LIMIT", cls.daily_loss_limit)),
            "kill_switch": env.get("SIGNALS_KILL_SWITCH", "").lower() in ("1", "true", "yes"),
            "kill_file": home / "KILL_SWITCH",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def killed(self) -> str | None:
        """Why trading must stop now, or None."""
        if self.kill_switch:
            return "kill switch on (setting)"
        if self.kill_file is not None and self.kill_file.exists():
            return f"kill switch on (file {self.kill_file})"
        return None


def target_side(
    decisions: dict[int, int], candle_ms: int, step_ms: int, horizon: int, present: set[int]
) -> int:
    """The side to hold from the open after candle `candle_ms`.

    The backtest's rule (`pipeline.backtest.schedule.held_sides`): the latest non-zero
    decision among the last `horizon` candles, counting back only across candles that exist
    (a gap voids the decisions before it); FLAT when there is none.
    """
    for back in range(horizon):
        t = candle_ms - back * step_ms
        if t not in present:
            break
        side = decisions.get(t, FLAT)
        if side != FLAT:
            return side
    return FLAT
