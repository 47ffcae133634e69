"""Labels follow the barrier rule, leave no-trades out of training, and stop at gaps."""

import numpy as np
import pandas as pd
import pytest

from pipeline.data.candles import candle_frame
from pipeline.features.labels import LabelRule, attach_labels, class_balance, market_scale

H = 3_600_000


def opens(values: list[float], missing: tuple[int, ...] = ()) -> pd.DataFrame:
    """Flat candles at each price: open = high = low = close."""
    rows = [[i * H, c, c, c, c, 1.0] for i, c in enumerate(values) if i not in missing]
    return candle_frame(rows)


def _features(candles: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                "market": m,
                "timestamp": pd.to_datetime(f["timestamp"], unit="ms", utc=True),
                "x": 0.0,
            }
        )
        for m, f in candles.items()
    ]
    return pd.concat(parts, ignore_index=True)


TIME_ONLY = LabelRule(horizon=1, barrier_k=None, cost=0.001)


def test_time_exits_label_the_move_from_the_next_open_to_the_open_after() -> None:
    # t enters at open t+1 and leaves at open t+2: the label is the sign of that move.
    candles = {"A/USDT:USDT": opens([100, 100, 104, 101, 101.05, 99])}
    data = attach_labels(_features(candles), candles, "1h", TIME_ONLY)
    assert data["outcome"].tolist()[:4] == [1.0, 0.0, -1.0, 0.0]  # +4 %, −2.9 %, +0.05 %, −2 %
    # The +0.05 % move is inside the round trip: no trade, left out of training.
    assert np.isnan(data["label"].iloc[2]) and data["label"].iloc[0] == 1.0
    assert data["forward_return"].iloc[1] == pytest.approx(101 / 104 - 1)
    assert data["outcome"].iloc[4:].isna().all()  # no open after the next: unknown


def test_a_gap_inside_the_hold_gives_no_label() -> None:
    candles = {"A/USDT:USDT": opens([100, 101, 102, 103, 104, 105], missing=(3,))}
    data = attach_labels(_features(candles), candles, "1h", TIME_ONLY)
    # rows are hours 0,1,2,4,5: hour 1 would leave at hour 3 (missing); hour 2 enters at it.
    assert data["outcome"].iloc[0] == 1.0  # 101 → 102
    assert data["outcome"].iloc[1:].isna().all()


def test_scale_is_causal_and_the_rule_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    frame = opens(list(prices))
    rule = LabelRule(horizon=4, barrier_k=1.5, vol_window=24)
    full = market_scale(frame, "1h", rule)
    prefix = market_scale(frame.iloc[:120], "1h", rule)
    np.testing.assert_array_equal(full[:120], prefix)  # later candles never change it
    assert np.isnan(full[:24]).all() and np.isfinite(full[24:]).all()
    assert full[50] == pytest.approx(
        np.std(np.diff(np.log(prices[26:51])), ddof=1) * 2  # σ over 24 returns × √4
    )
    assert LabelRule.from_json(rule.to_json()) == rule
    # A record from before barriers carries a horizon only: time exits, no cost.
    assert LabelRule.from_json({"horizon": 3}) == LabelRule(horizon=3, barrier_k=None, cost=0.0)


def test_attach_labels_and_class_balance() -> None:
    candles = {
        "A/USDT:USDT": opens([1, 1, 2, 3, 2, 1]),
        "B/USDT:USDT": opens([5, 5, 4, 3, 4, 5]),
    }
    data = attach_labels(_features(candles), candles, "1h", TIME_ONLY)
    assert data["label"].tolist()[:4] == [1.0, 1.0, 0.0, 0.0]
    balance = class_balance(data, ["market"]).set_index("market")
    assert balance.loc["A/USDT:USDT", "labelled"] == 4
    assert balance.loc["B/USDT:USDT", "up_share"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="horizon"):
        LabelRule(horizon=0)
