"""Labels look H candles forward, stop at gaps and at the end, and honour the dead zone."""

import numpy as np
import pandas as pd
import pytest

from pipeline.data.candles import candle_frame
from pipeline.features.labels import (
    attach_labels,
    class_balance,
    direction_labels,
    forward_log_return,
)

H = 3_600_000


def closes(values: list[float], missing: tuple[int, ...] = ()) -> pd.DataFrame:
    rows = [[i * H, c, c, c, c, 1.0] for i, c in enumerate(values) if i not in missing]
    return candle_frame(rows)


def test_forward_return_over_h_candles() -> None:
    frame = closes([100, 110, 99, 120, 120])
    out = forward_log_return(frame, 2, "1h")
    np.testing.assert_allclose(out[:3], np.log([99 / 100, 120 / 110, 120 / 99]))
    assert np.isnan(out[3:]).all()  # the last H rows have no label


def test_a_gap_inside_the_horizon_gives_no_label() -> None:
    frame = closes([100, 101, 102, 103, 104, 105], missing=(3,))
    out = forward_log_return(frame, 2, "1h")
    # rows are hours 0,1,2,4,5: hour 1 + 2 = hour 3 is missing; hour 2 + 2 = hour 4 exists
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(np.log(104 / 102))
    assert out[0] == pytest.approx(np.log(102 / 100))


def test_dead_zone_drops_small_moves() -> None:
    frame = closes([100, 100.05, 101, 99])
    labels = direction_labels(frame, 1, "1h", dead_zone=0.001)
    assert np.isnan(labels[0])  # +0.05 % is inside the dead zone
    assert labels[1] == 1.0
    assert labels[2] == 0.0
    assert np.isnan(labels[3])
    with pytest.raises(ValueError, match="horizon"):
        forward_log_return(frame, 0, "1h")


def test_attach_labels_and_class_balance() -> None:
    candles = {"A/USDT:USDT": closes([1, 2, 3, 2, 1]), "B/USDT:USDT": closes([5, 4, 3, 4, 5])}
    times = pd.to_datetime(np.arange(5) * H, unit="ms", utc=True)
    features = pd.concat(
        [pd.DataFrame({"market": m, "timestamp": times, "x": 0.0}) for m in candles],
        ignore_index=True,
    )
    data = attach_labels(features, candles, "1h", horizon=1)
    assert data["label"].tolist()[:4] == [1.0, 1.0, 0.0, 0.0]
    balance = class_balance(data, ["market"]).set_index("market")
    assert balance.loc["A/USDT:USDT", "labelled"] == 4
    assert balance.loc["B/USDT:USDT", "up_share"] == pytest.approx(0.5)
