"""One live portfolio decision: every market's explained decision at a closed candle → scores →
the portfolio layer's step (`pipeline.portfolio.decide_one`) from the stored state.

Each market decides through the one inference path (`decide_scorer`: the LSTM's one-window
forward pass, or the boosting trees on the window's last row, as the backtest of a stored
model scores it), its P(up) becomes a score through the model's score
scale, its volatility is the same rolling window over its stored candles as the backtest's,
and the layer's step is the function the backtest's loop calls: given the same candles and the
same state, live and backtest give the same weights bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.timeframes import timeframe_ms
from pipeline.model.scorer import LoadedScorer
from pipeline.portfolio.layer import decide_one
from pipeline.portfolio.model import PortfolioSettings
from pipeline.portfolio.rebalance import LayerState
from pipeline.portfolio.scores import score_from_probability
from pipeline.portfolio.volatility import annual_volatility
from pipeline.signals.candle import LiveWindowError, window_at
from pipeline.signals.inference import Decision, decide_scorer


@dataclass(frozen=True)
class PortfolioDecision:
    """Every market's decision at one candle and what the layer made of them."""

    model_id: int | None
    candle_ms: int
    markets: list[str]
    decisions: dict[str, Decision]  # markets with a complete window
    skipped: dict[str, str]  # market → why it has no decision (its score is NaN)
    scores: np.ndarray
    vol: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    orders: np.ndarray
    state: LayerState
    settings: PortfolioSettings = field(repr=False, default=None)  # type: ignore[assignment]

    def context(self, market: str) -> dict[str, Any]:
        """The market's place in the portfolio, as its signal records it."""
        j = self.markets.index(market)
        return {
            "score": _plain(self.scores[j]),
            "vol": _plain(self.vol[j]),
            "raw_weight": float(self.raw[j]),
            "target_weight": float(self.targets[j]),
            "ordered": bool(self.orders[j]),
            "gross_exposure": float(np.abs(self.targets).sum()),
            "net_exposure": float(self.targets.sum()),
        }

    def side(self, market: str) -> int:
        """The side the portfolio holds in `market` after this decision."""
        return int(np.sign(self.targets[self.markets.index(market)]))


def _plain(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def market_vol(candles: pd.DataFrame, candle_ms: int, timeframe: str, days: float) -> float:
    """The annualised volatility at the close of `candle_ms` over the stored candles up to it."""
    stamps = candles["timestamp"].to_numpy(dtype="int64")
    end = int(np.searchsorted(stamps, candle_ms, side="right"))
    if end == 0 or stamps[end - 1] != candle_ms:
        return float("nan")
    vol = annual_volatility(
        candles["close"].to_numpy(dtype="float64")[:end], stamps[:end], timeframe, days=days
    )
    return float(vol[-1])


def decide_portfolio(
    loaded: LoadedScorer,
    settings: PortfolioSettings,
    features: Mapping[str, pd.DataFrame],
    candles: Mapping[str, pd.DataFrame],
    candle_ms: int,
    timeframe: str,
    state: LayerState | None,
) -> PortfolioDecision:
    """Decide every market of the model's universe at the close of `candle_ms` and step the
    layer from `state` (None: flat, the first decision). A market whose window is incomplete
    has no score (NaN: weight 0), and says why."""
    markets = settings.universe
    step = timeframe_ms(timeframe)
    decisions: dict[str, Decision] = {}
    skipped: dict[str, str] = {}
    p_up = np.full(len(markets), np.nan)
    vol = np.full(len(markets), np.nan)
    for j, market in enumerate(markets):
        vol[j] = market_vol(candles[market], candle_ms, timeframe, settings.vol_days)
        try:
            window = window_at(features[market], loaded.features, loaded.window, candle_ms, step)
        except LiveWindowError as err:
            skipped[market] = str(err)
            continue
        decision = decide_scorer(
            loaded, window, market=market, timestamp=pd.Timestamp(candle_ms, unit="ms", tz="UTC")
        )
        decisions[market] = decision
        p_up[j] = decision.probability_up
    scores = settings.scale.apply(score_from_probability(p_up))
    state = state or LayerState.initial(len(markets))
    targets, orders, raw, after = decide_one(scores, vol, settings.config, state)
    return PortfolioDecision(
        model_id=loaded.model_id,
        candle_ms=candle_ms,
        markets=list(markets),
        decisions=decisions,
        skipped=skipped,
        scores=scores,
        vol=vol,
        raw=raw,
        targets=targets,
        orders=orders,
        state=after,
        settings=settings,
    )
