"""What a stored portfolio model decides with, beside its network: read from its record's config.

The score scale (P(up) → a score in [−1, 1]), the operating point (the layer's settings, its
threshold chosen on validation), the markets in the order of the layer's columns and the
volatility window positions are sized by. The backtest of a stored model and live trading
read the same fields, so they turn the same P(up) into the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.portfolio.config import PortfolioConfig
from pipeline.portfolio.scores import ScoreScale

KIND = "portfolio"  # config["kind"] of a portfolio model's record
# The model store's name for portfolio models: their own production slot per timeframe,
# apart from the barrier strategy's `lstm`.
MODEL_NAME = "portfolio"


@dataclass(frozen=True)
class PortfolioSettings:
    config: PortfolioConfig
    scale: ScoreScale
    universe: list[str]  # the layer's columns, in order
    vol_days: float

    @classmethod
    def from_config(cls, config: dict[str, Any], model_id: int | None = None) -> PortfolioSettings:
        if config.get("kind") != KIND:
            raise ValueError(f"model {model_id} is not a portfolio model")
        return cls(
            config=PortfolioConfig.from_json(config["portfolio"]),
            scale=ScoreScale(float(config["score_scale"])),
            universe=list(config["universe"]),
            vol_days=float(config["vol_days"]),
        )


def is_portfolio(config: dict[str, Any]) -> bool:
    return config.get("kind") == KIND
