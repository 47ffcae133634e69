"""Which of the registry's features a model may be offered at a decision timeframe.

A feature whose warm-up is longer than the history before the first training window leaves
nothing to train on: an EMA of 200 daily candles is defined only 200 days (and its seeding)
after the first candle, so on the sample's daily candles the full set of 79 is complete only
from 2023. At a decision timeframe the candidates are the features usable within
`MAX_WARMUP_DAYS` (fixed before any look: at 1h and 4h nearly all 79, at 1d 49).
"""

from __future__ import annotations

from pipeline.data.timeframes import candles_in
from pipeline.features.registry import feature_names, warmups

MAX_WARMUP_DAYS = 60.0


def candidate_features(timeframe: str, max_warmup_days: float = MAX_WARMUP_DAYS) -> list[str]:
    """The registry's features whose warm-up fits in `max_warmup_days` at `timeframe`."""
    limit = candles_in(max_warmup_days, timeframe)
    warm = warmups(timeframe)
    return [name for name in feature_names() if warm[name] <= limit]
