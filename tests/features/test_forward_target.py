"""The forward risk-adjusted return target: the sign of the H-candle move, or its rank."""

import numpy as np
import pandas as pd
import pytest

from pipeline.features.labels import LabelRule, attach_labels

H = 3_600_000


def candles(opens: list[float]) -> pd.DataFrame:
    o = np.array(opens, dtype=float)
    return pd.DataFrame(
        {
            "timestamp": np.arange(len(o), dtype="int64") * H,
            "open": o,
            "high": o * 1.001,
            "low": o * 0.999,
            "close": o,
            "volume": 1.0,
        }
    )


def frame(markets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = [
        pd.DataFrame(
            {"market": m, "timestamp": pd.to_datetime(c["timestamp"], unit="ms", utc=True)}
        )
        for m, c in markets.items()
    ]
    return pd.concat(rows, ignore_index=True)


def test_the_forward_target_is_the_sign_of_the_move_from_the_next_open_over_h_candles():
    rule = LabelRule.forward(2)
    assert rule.kind == "forward" and rule.barrier_k is None and rule.cost == 0
    c = {"A": candles([100, 101, 103, 102, 100, 99, 99.5])}
    out = attach_labels(frame(c), c, "1h", LabelRule(**{**rule.to_json(), "vol_window": 2}))
    # t enters at open t+1 and leaves at open t+3: 101→102 up, 103→99 down, 102→99.5 down.
    np.testing.assert_allclose(
        out["forward_return"][:4], [102 / 101 - 1, 100 / 103 - 1, 99 / 102 - 1, 99.5 / 100 - 1]
    )
    np.testing.assert_array_equal(out["label"][:4], [1.0, 0.0, 0.0, 0.0])
    assert out["label"][4:].isna().all()  # the outcome is not known yet


def test_the_cross_sectional_target_ranks_risk_adjusted_returns_against_the_median():
    rule = LabelRule(**{**LabelRule.forward(1, cross_sectional=True).to_json(), "vol_window": 2})
    assert rule.kind == "forward_rank"
    c = {
        "A": candles([100, 100, 101, 102, 103]),  # steady +1 %: small σ, large z
        "B": candles([100, 100, 90, 99, 89]),  # −10 %: the lowest
        "C": candles([100, 100, 100.5, 100, 100.5]),
    }
    out = attach_labels(frame(c), c, "1h", rule).set_index(["market", "timestamp"])
    t = pd.Timestamp(2 * H, unit="ms", tz="UTC")  # decided at t=2: enters at 3, leaves at 4
    z = {m: out.loc[(m, t), "forward_return"] / out.loc[(m, t), "scale"] for m in c}
    median = np.median(list(z.values()))
    for m in c:
        expected = 1.0 if z[m] > median else 0.0 if z[m] < median else np.nan
        assert out.loc[(m, t), "label"] == expected or (
            np.isnan(expected) and np.isnan(out.loc[(m, t), "label"])
        )
    assert np.nansum([out.loc[(m, t), "label"] for m in c]) == 1  # one above, one below


def test_a_cross_sectional_rule_with_barriers_is_refused():
    with pytest.raises(ValueError, match="cross-sectional target ranks forward returns"):
        LabelRule(horizon=4, barrier_k=1.0, cost=0.0, cross_sectional=True)


def test_stored_barrier_rules_read_back_unchanged():
    rule = LabelRule()
    assert rule.kind == "barrier"
    assert LabelRule.from_json(rule.to_json()) == rule
    assert LabelRule.from_json(LabelRule.forward(5, True).to_json()).cross_sectional
