"""Windows: exactly the L contiguous rows of one market ending at the decision time."""

import numpy as np
import pandas as pd
import pytest

from pipeline.model.dataset import make_windows
from tests.helpers.model import feature_columns, synthetic_frame

HOUR = pd.Timedelta(hours=1)


def damaged_frame() -> pd.DataFrame:
    """Two markets with a missing candle, a NaN feature and a NaN label."""
    frame = synthetic_frame(markets=2, rows=60, features=3, seed=1)
    m0 = frame.index[frame["market"] == "M0USDT"]
    m1 = frame.index[frame["market"] == "M1USDT"]
    frame.loc[m1[30], "f2"] = np.nan
    frame.loc[m0[50], "label"] = np.nan
    return frame.drop(index=m0[20]).sample(frac=1.0, random_state=0)  # a gap; rows shuffled


def reference_ends(frame: pd.DataFrame, features: list[str], window: int) -> list[tuple]:
    """(timestamp, market) of every valid window, by a plain loop over each market."""
    out = []
    for market, part in frame.groupby("market"):
        part = part.sort_values("timestamp")
        times = part["timestamp"].tolist()
        finite = np.isfinite(part[features].to_numpy()).all(axis=1)
        labels = part["label"].to_numpy()
        for e in range(window - 1, len(part)):
            rows = range(e - window + 1, e + 1)
            contiguous = times[e] - times[e - window + 1] == (window - 1) * HOUR
            if contiguous and finite[list(rows)].all() and np.isfinite(labels[e]):
                out.append((times[e], market))
    return sorted(out)


def test_windows_are_the_rows_ending_at_the_decision_time() -> None:
    frame = damaged_frame()
    features = feature_columns(frame)
    window = 5
    ws = make_windows(frame, features, window, "1h")
    keys = list(zip(ws.timestamp, ws.market, strict=True))
    assert keys == reference_ends(frame, features, window)  # same windows, (time, market) order
    indexed = frame.set_index(["market", "timestamp"]).sort_index()
    for i in range(len(ws)):
        t, market = ws.timestamp[i], ws.market[i]
        times = pd.date_range(end=t, periods=window, freq="h")
        expected = indexed.loc[[(market, s) for s in times], features].to_numpy(np.float32)
        np.testing.assert_array_equal(ws.X[i], expected)
        assert ws.y[i] == indexed.loc[(market, t), "label"]
        assert ws.forward_return[i] == indexed.loc[(market, t), "forward_return"]
    np.testing.assert_array_equal(np.asarray(ws.X)[7], ws.X[7])


def test_damage_removes_exactly_the_windows_touching_it() -> None:
    frame = damaged_frame()
    ws = make_windows(frame, feature_columns(frame), 5, "1h")
    # 56 windows per clean market; the gap kills 4 (+1: the row is gone), the NaN feature 5,
    # the NaN label 1.
    assert len(ws) == 2 * 56 - 5 - 5 - 1
    gap = pd.Timestamp("2021-01-01", tz="UTC") + 20 * HOUR
    m0 = ws.timestamp[ws.market == "M0USDT"]
    assert not ((m0 >= gap) & (m0 < gap + 5 * HOUR)).any()


def test_no_window_spans_two_markets() -> None:
    """B's candles continue A's on the time grid: only the market column separates them."""
    frame = synthetic_frame(markets=2, rows=20, features=2, seed=2)
    a = frame[frame["market"] == "M0USDT"].iloc[:10]
    b = frame[frame["market"] == "M1USDT"].iloc[10:]
    ws = make_windows(pd.concat([a, b]), ["f0", "f1"], 4, "1h")
    assert len(ws) == 2 * (10 - 4 + 1)
    first_rows = ws.timestamp - 3 * HOUR
    assert (first_rows[ws.market == "M1USDT"] >= b["timestamp"].min()).all()


def test_windows_stay_lazy_and_gather_batches() -> None:
    frame = synthetic_frame(markets=3, rows=200, features=4, seed=3)
    ws = make_windows(frame, feature_columns(frame), 16, "1h")
    assert ws.X.shape == (3 * 185, 16, 4)
    assert ws.X.values.nbytes == 3 * 200 * 4 * 4  # rows × features, not windows × L × F
    assert ws.X.nbytes_materialised == 3 * 185 * 16 * 4 * 4
    batch = ws.X[np.array([0, 5, 9])]
    assert batch.shape == (3, 16, 4) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], ws.X[5])
    sub = ws.take(ws.market == "M2USDT")
    assert len(sub) == 185 and set(sub.market) == {"M2USDT"}
    np.testing.assert_array_equal(sub.X[0], ws.X[np.flatnonzero(ws.market == "M2USDT")[0]])


def test_window_of_one_and_bad_input() -> None:
    frame = synthetic_frame(markets=1, rows=10, features=2)
    assert len(make_windows(frame, ["f0", "f1"], 1, "1h")) == 10
    with pytest.raises(ValueError, match="duplicate"):
        make_windows(pd.concat([frame, frame.iloc[:1]]), ["f0"], 2, "1h")
    with pytest.raises(ValueError, match="missing"):
        make_windows(frame, ["nope"], 2, "1h")
    with pytest.raises(ValueError, match="at least one"):
        make_windows(frame, ["f0"], 0, "1h")


def test_decision_windows_do_not_depend_on_the_next_candle() -> None:
    """A flat next candle (or none yet) leaves the label unknown; a decision window must not
    care: with labelled=False it exists, with its label NaN."""
    import numpy as np
    import pandas as pd

    from pipeline.model.dataset import make_windows

    stamps = pd.date_range("2023-01-01", periods=6, freq="1h", tz="UTC")
    data = pd.DataFrame(
        {
            "market": "X",
            "timestamp": stamps,
            "f": np.arange(6, dtype=float),
            "label": [1.0, 0.0, np.nan, 1.0, 0.0, np.nan],
            "forward_return": [0.1, -0.1, 0.0, 0.1, -0.1, np.nan],
        }
    )
    labelled = make_windows(data, ["f"], 2, "1h")
    decisions = make_windows(data, ["f"], 2, "1h", labelled=False)
    assert list(labelled.timestamp) == [stamps[1], stamps[3], stamps[4]]
    assert list(decisions.timestamp) == list(stamps[1:])
    assert np.isnan(decisions.y[[1, 4]]).all()
