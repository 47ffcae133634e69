"""The 79 candidate features: names, families, parameters and warm-ups, in one ordered table.

Everything downstream (column order, selection, the model's input, warm-up NaN-ing, the
"finite after warm-up" checks) reads this table, so a feature exists once, here.

Warm-up (`FeatureSpec.warmup`, in base candles, for a 1h base) is the number of leading rows of
every contiguous run of candles for which the feature is NaN. Windowed features: exactly the
rows before their window is full. Recursive ones (EMA, Wilder smoothing, seeded by TA-Lib at its
lookback): the lookback plus, per recursive stage, the steps after which the seed's weight
(1 - alpha)**k falls below `SEED_WEIGHT` (1e-3), so a value no longer depends on where the data
happened to start: live inference on a recent window then agrees with the training run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipeline.data.timeframes import timeframe_ms

SEED_WEIGHT = 1e-3
REFERENCE_BASE = "1h"  # the base timeframe `FeatureSpec.warmup` is stated for
HIGHER_TIMEFRAMES = ("4h", "1d")


class Params(dict):
    """A read-only, hashable dict: JSON-serialisable like a dict, safe inside a frozen spec."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple[type[Params], tuple[dict[str, Any]]]:
        return (Params, (dict(self),))  # pickle/deepcopy would otherwise call __setitem__

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("feature parameters are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: str
    timeframe: str  # "base", a higher timeframe ("4h", "1d") or "cross"
    params: Params
    warmup: int  # base candles (1h base) before the value is defined and stable

    def warmup_at(self, base_timeframe: str) -> int:
        """Warm-up in candles of another base timeframe (higher-tf and day-based ones scale)."""
        base = timeframe_ms(base_timeframe)
        if "htf_warmup" in self.params:
            return htf_base_warmup(self.params["htf_warmup"], timeframe_ms(self.timeframe), base)
        if "days" in self.params:
            return self.params["days"] * 86_400_000 // base - 1
        return self.warmup


def ema_settle(period: int) -> int:
    """Steps until an EMA's (alpha = 2/(n+1)) seed weighs less than SEED_WEIGHT."""
    return _settle(2.0 / (period + 1))


def wilder_settle(period: int) -> int:
    """Steps until a Wilder average's (alpha = 1/n) seed weighs less than SEED_WEIGHT."""
    return _settle(1.0 / period)


def _settle(alpha: float) -> int:
    return math.ceil(math.log(SEED_WEIGHT) / math.log(1.0 - alpha))


def htf_base_warmup(htf_warmup: int, htf_ms: int, base_ms: int) -> int:
    """Worst-case base rows before a higher-tf value (defined from its candle `htf_warmup`) exists.

    The first complete higher candle may start up to one higher candle minus one base candle
    after the base data does, and its value is usable from the base row that closes with it.
    A higher timeframe not coarser than the base is served by the base candles themselves.
    """
    ratio = max(htf_ms, base_ms) // base_ms
    return (htf_warmup + 2) * ratio - 2


# -- the table -------------------------------------------------------------------------------

MACD = {"fast": 12, "slow": 26, "signal": 9}
MACD_WARMUP = 33 + ema_settle(26) + ema_settle(9)  # TA-Lib lookback, then both EMAs settle
VOLUME_MEDIAN_DAYS = 30


def _base(name: str, family: str, warmup: int, **params: Any) -> FeatureSpec:
    return FeatureSpec(name, family, "base", Params(params), warmup)


def _returns() -> list[FeatureSpec]:
    return [
        _base(f"ret_{k}", "returns", k, candles=k, kind="log close-to-close")
        for k in (1, 2, 4, 8, 12, 24, 48)
    ]


def _volatility() -> list[FeatureSpec]:
    specs = [
        _base(f"rv_{n}", "volatility", n, window=n, of="1-candle log return", ddof=0)
        for n in (12, 24, 72, 168)
    ]
    specs += [
        _base("parkinson_24", "volatility", 23, window=24, per="candle"),
        _base("garman_klass_24", "volatility", 23, window=24, per="candle"),
    ]
    specs += [
        _base(f"atr_{n}_rel", "volatility", n + wilder_settle(n), period=n, norm="close")
        for n in (14, 48)
    ]
    return specs


def _momentum() -> list[FeatureSpec]:
    rsi = [
        _base(f"rsi_{n}", "momentum", n + wilder_settle(n), period=n, range="0..100")
        for n in (7, 14, 28)
    ]
    macd = [
        _base(f"macd_{part}_rel", "momentum", MACD_WARMUP, **MACD, norm="close")
        for part in ("line", "signal", "hist")
    ]
    stoch = {"fastk": 14, "slowk": 3, "slowd": 3, "ma": "SMA"}
    di = 14 + wilder_settle(14)
    return [
        *rsi,
        *macd,
        _base("stoch_k", "momentum", 17, **stoch),
        _base("stoch_d", "momentum", 17, **stoch),
        _base("willr_14", "momentum", 13, period=14, range="-100..0"),
        _base("cci_20", "momentum", 19, period=20),
        _base("adx_14", "momentum", 27 + 2 * wilder_settle(14), period=14),
        _base("plus_di_14", "momentum", di, period=14),
        _base("minus_di_14", "momentum", di, period=14),
        _base("ultosc", "momentum", 28, periods=(7, 14, 28)),
    ]


def _trend() -> list[FeatureSpec]:
    specs = [
        _base(f"close_ema_{n}", "trend", n - 1 + ema_settle(n), period=n, formula="close/EMA-1")
        for n in (9, 21, 50, 100, 200)
    ]
    specs += [
        _base("ema_9_21", "trend", 20 + ema_settle(21), fast=9, slow=21, formula="EMA9/EMA21-1"),
        _base("ema_21_50", "trend", 49 + ema_settle(50), fast=21, slow=50, formula="EMA21/EMA50-1"),
    ]
    specs += [
        _base(f"slope_{n}_rel", "trend", n - 1, window=n, norm="close", of="linear regression")
        for n in (24, 72)
    ]
    specs.append(_base("aroonosc_25", "trend", 25, period=25))
    return specs


def _bands() -> list[FeatureSpec]:
    keltner = max(19 + ema_settle(20), 20 + wilder_settle(20))
    return [
        _base("bb_pctb_20", "bands", 19, period=20, nbdev=2, std="population"),
        _base("bb_width_20", "bands", 19, period=20, nbdev=2, norm="middle band"),
        _base("keltner_pos_20", "bands", keltner, ema=20, atr=20, mult=2, range="0..1 inside"),
        _base("donchian_pos_20", "bands", 19, window=20, includes="current candle"),
        _base("donchian_pos_55", "bands", 54, window=55, includes="current candle"),
        _base("range_pos_24", "bands", 24, window=24, includes="previous 24 candles only"),
    ]


def _volume() -> list[FeatureSpec]:
    return [
        _base("vol_z_24", "volume", 23, window=24, std="population"),
        _base("vol_z_168", "volume", 167, window=168, std="population"),
        _base("logvol_chg_1", "volume", 1, candles=1),
        _base("logvol_chg_24", "volume", 24, candles=24),
        _base("obv_slope_24", "volume", 23, window=24, norm="mean volume over 24"),
        _base("mfi_14", "volume", 14, period=14),
        _base("adosc_rel", "volume", 9 + ema_settle(10), fast=3, slow=10, norm="volume sum 10"),
        _base("vwap_dev_24", "volume", 23, window=24, price="typical (h+l+c)/3"),
        _base(
            "volume_per_vol",
            "volume",
            168,
            short=24,
            long=168,
            formula="log((meanvol24/meanvol168)/(rv24/rv168))",
        ),
        _base(
            "logvol_rel_median_30d",
            "volume",
            VOLUME_MEDIAN_DAYS * 24 - 1,
            days=VOLUME_MEDIAN_DAYS,
            median="lower (of the two middle values)",
            formula="log(volume/rolling median)",
        ),
    ]


def _candle() -> list[FeatureSpec]:
    return [
        _base("body_rel", "candle", 0, formula="(close-open)/(high-low)"),
        _base("upper_wick_rel", "candle", 0, formula="(high-max(open,close))/(high-low)"),
        _base("lower_wick_rel", "candle", 0, formula="(min(open,close)-low)/(high-low)"),
        _base("clv", "candle", 0, formula="((close-low)-(high-close))/(high-low)"),
        _base("open_gap", "candle", 1, formula="log(open/previous close)"),
    ]


def _calendar() -> list[FeatureSpec]:
    return [
        _base(f"{unit}_{fn}", "calendar", 0, of="candle open time, UTC", period=period)
        for unit, period in (("hour", 24), ("dow", 7))
        for fn in ("sin", "cos")
    ]


HTF_PARTS = {  # suffix -> (warm-up in higher-tf candles, params)
    "ret": (1, {"of": "last closed candle, log close-to-close"}),
    "rsi_14": (14 + wilder_settle(14), {"period": 14}),
    "rv_20": (20, {"window": 20, "ddof": 0}),
    "close_ema_20": (19 + ema_settle(20), {"period": 20}),
    "macd_hist_rel": (MACD_WARMUP, {**MACD, "norm": "close"}),
}


def _higher() -> list[FeatureSpec]:
    specs = []
    for tf in HIGHER_TIMEFRAMES:
        for suffix, (htf_warmup, params) in HTF_PARTS.items():
            base_warmup = htf_base_warmup(
                htf_warmup, timeframe_ms(tf), timeframe_ms(REFERENCE_BASE)
            )
            specs.append(
                FeatureSpec(
                    f"htf_{tf}_{suffix}",
                    "higher",
                    tf,
                    Params({**params, "htf_warmup": htf_warmup, "join": "close time, as of"}),
                    base_warmup,
                )
            )
    return specs


def _cross() -> list[FeatureSpec]:
    factor = "equal-weight mean 1-candle log return of the markets present"
    return [
        FeatureSpec("mkt_ret_1", "cross", "cross", Params(factor=factor), 1),
        FeatureSpec("mkt_ret_24", "cross", "cross", Params(window=24, factor=factor), 24),
        FeatureSpec("mkt_corr_72", "cross", "cross", Params(window=72), 72),
        FeatureSpec("mkt_beta_168", "cross", "cross", Params(window=168), 168),
        FeatureSpec("rel_ret_24", "cross", "cross", Params(window=24, formula="ret24-mkt24"), 24),
    ]


REGISTRY: tuple[FeatureSpec, ...] = (
    *_returns(),
    *_volatility(),
    *_momentum(),
    *_trend(),
    *_bands(),
    *_volume(),
    *_candle(),
    *_calendar(),
    *_higher(),
    *_cross(),
)

FAMILY_COUNTS = {
    "returns": 7,
    "volatility": 8,
    "momentum": 14,
    "trend": 10,
    "bands": 6,
    "volume": 10,
    "candle": 5,
    "calendar": 4,
    "higher": 10,
    "cross": 5,
}
BY_NAME = {spec.name: spec for spec in REGISTRY}

if Counter(s.family for s in REGISTRY) != FAMILY_COUNTS or len(BY_NAME) != len(REGISTRY):
    raise AssertionError("feature registry out of step with its family counts")


def feature_names() -> list[str]:
    """The 79 feature columns, in output order."""
    return [spec.name for spec in REGISTRY]


def warmups(base_timeframe: str = REFERENCE_BASE) -> dict[str, int]:
    """Warm-up per feature in candles of `base_timeframe`."""
    return {spec.name: spec.warmup_at(base_timeframe) for spec in REGISTRY}
