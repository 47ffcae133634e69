"""The portfolio layer's settings, and every rule they stand for.

One decision time, every market's score s_m ∈ [-1, 1] (NaN: no score) and annualised
volatility vol_m known at that time → a target weight w_m (fraction of equity, + long, − short).
In this order (`pipeline.portfolio.weights.target_weights`):

1. Validity. A market takes part only with a finite score and a finite vol > 0; any other
   market gets weight 0 and is left out of the neutral mean and the top-k ranking. A finite
   score outside [-1, 1] (or ±inf) is a caller's bug and raises.
2. `neutral`: scores are demeaned across the valid markets (a lone valid market demeans to 0).
   Demeaned scores may leave [-1, 1] (+1, −1, −1 → 4/3, −2/3, −2/3); the market cap bounds them.
3. Selection, on the (demeaned) scores:
   - "all": every non-zero score;
   - "threshold": |s| ≥ `threshold` (exact float comparison; `threshold` is ignored otherwise);
   - "top_k": the `top_k` highest scores long and the `top_k` lowest short; only s > 0 can be
     long and only s < 0 short (a "top" pick with s ≤ 0 is not taken). Ties are broken by the
     lower column index, so a given input always picks the same markets.
4. Sizing: w_m = size(s_m) × (target_vol / vol_m) / N (`sizing` "inverse_vol"), or
   w_m = size(s_m) / N (`sizing` "equal": equal sleeves, as equal-weight buy-and-hold holds);
   size(s) = s with `conviction`, sign(s) without; N = `markets` or, when None, the number of
   columns given. Equal sizing still needs a valid vol (the market must have a history).
5. `long_only`: negative weights become 0 (before the caps, so shorts never use up a cap).
6. Market cap: |w_m| ≤ `market_cap` (None: 2 / N), by clipping.
7. Gross cap: if Σ|w| > `gross_cap`, every weight is scaled by gross_cap / Σ|w|.
8. Net cap: if |Σw| > `net_cap`, the side in excess (longs when Σw > 0) is scaled so that
   |Σw| = net_cap, the other side untouched. With `long_only`, net_cap = 0 means no positions.

Then the turnover rules (`pipeline.portfolio.rebalance.rebalance`), against the standing target
(the last target a market was ordered to, 0 at first):

- `band`: a market is ordered only when |new target − standing target| > band. This holds for
  exits too: a new target of exactly 0 within the band of a non-zero standing target is not
  traded, so a small position may linger until a larger move. With band 0 a market is ordered
  whenever its target changes at all.
- `min_hold`: a market ordered at decision t is not ordered again before decision t + min_hold,
  exits included; its standing target stays. Counted in decisions (calls of the layer), not in
  clock time. min_hold 0 and 1 are the same (one order a decision at most).

The layer never re-orders a market whose target stands: between orders its weight drifts with
prices and is not traded back to the target (turnover only where the rules above allow it).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

SELECTIONS = ("all", "threshold", "top_k")
SIZINGS = ("inverse_vol", "equal")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _is_count(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _positive(name: str, value: Any, *, optional: bool = False, zero: bool = False) -> None:
    """A finite number > 0 (≥ 0 with `zero`), or None where `optional`."""
    if optional and value is None:
        return
    if not (_is_number(value) and math.isfinite(value) and (value > 0 or (zero and value == 0))):
        what = "a finite number ≥ 0" if zero else "a finite number > 0"
        raise ValueError(f"{name} must be {what}{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class PortfolioConfig:
    """How scores become target weights; the rules are in this module's docstring."""

    target_vol: float = 0.40  # annual vol of one full-conviction sleeve
    markets: int | None = None  # sleeves N; None: the number of columns given
    conviction: bool = True  # size by |s|; False: by sign(s)
    neutral: bool = False  # demean scores across valid markets first
    selection: str = "threshold"  # "all" | "threshold" | "top_k"
    threshold: float = 0.0
    top_k: int = 1
    market_cap: float | None = None  # None: 2 / N
    gross_cap: float | None = None  # None: no cap
    net_cap: float | None = None  # None: no cap
    long_only: bool = False
    band: float = 0.0  # no-trade band, fraction of equity
    min_hold: int = 0  # decision candles between two orders of a market
    sizing: str = "inverse_vol"  # "inverse_vol" | "equal"

    def __post_init__(self) -> None:
        _positive("target_vol", self.target_vol)
        if self.markets is not None and not (_is_count(self.markets) and self.markets >= 1):
            raise ValueError(f"markets must be an integer ≥ 1 or None, got {self.markets!r}")
        for name in ("conviction", "neutral", "long_only"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}"
            )
        if self.sizing not in SIZINGS:
            raise ValueError(f"sizing must be one of {', '.join(SIZINGS)}, got {self.sizing!r}")
        _positive("threshold", self.threshold, zero=True)
        if not (_is_count(self.top_k) and self.top_k >= 1):
            raise ValueError(f"top_k must be an integer ≥ 1, got {self.top_k!r}")
        _positive("market_cap", self.market_cap, optional=True)
        _positive("gross_cap", self.gross_cap, optional=True)
        _positive("net_cap", self.net_cap, optional=True, zero=True)
        _positive("band", self.band, zero=True)
        if not (_is_count(self.min_hold) and self.min_hold >= 0):
            raise ValueError(f"min_hold must be an integer ≥ 0, got {self.min_hold!r}")
        # numpy scalars in, plain Python numbers stored: to_json stays JSON.
        for f in fields(self):
            value = getattr(self, f.name)
            if _is_count(value) and f.name in ("markets", "top_k", "min_hold"):
                object.__setattr__(self, f.name, int(value))
            elif _is_number(value):
                object.__setattr__(self, f.name, float(value))

    def sleeves(self, columns: int) -> int:
        """N, the number of sleeves the capital is split in, for `columns` markets given."""
        return self.markets if self.markets is not None else columns

    def cap_per_market(self, columns: int) -> float:
        """|w_m| at most: `market_cap`, or 2 / N."""
        return self.market_cap if self.market_cap is not None else 2.0 / self.sleeves(columns)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PortfolioConfig:
        """A stored config: unknown keys are ignored (other versions), missing keys default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})
