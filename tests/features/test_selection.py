"""Selection fits on training rows only, prunes near-duplicates, and finds real signal."""

import numpy as np
import pandas as pd
import pytest

from pipeline.features.selection import SelectionConfig, select_features, walk_forward_folds

N_FEATURES = 12


def synthetic(seed: int = 0, hours: int = 4000) -> tuple[pd.DataFrame, list[str]]:
    """f2 and f3 drive the label; f1 is a near-copy of f0; the rest is noise."""
    rng = np.random.default_rng(seed)
    frames = []
    times = pd.date_range("2021-01-01", periods=hours, freq="h", tz="UTC")
    for market in ("AAA/USDT:USDT", "BBB/USDT:USDT"):
        x = rng.normal(size=(hours, N_FEATURES))
        x[:, 1] = x[:, 0] + rng.normal(scale=0.01, size=hours)
        signal = 1.5 * x[:, 2] - 1.0 * x[:, 3]
        forward = signal + rng.normal(scale=1.0, size=hours)
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
        frame.insert(0, "timestamp", times)
        frame.insert(0, "market", market)
        frame["forward_return"] = forward
        frame["label"] = (forward > 0).astype(float)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), [f"f{i}" for i in range(N_FEATURES)]


CFG = SelectionConfig(
    train_end="2021-04-15",
    validation_end="2021-06-15",
    n_select=5,
    folds=3,
    repeats=2,
    max_iter=40,
    horizon=4,
)


@pytest.fixture(scope="module")
def result():
    data, features = synthetic()
    return select_features(data, features, CFG)


def test_signal_features_rank_first(result) -> None:
    assert set(result.table.loc[result.table["rank"] <= 2, "feature"]) == {"f2", "f3"}
    assert len(result.selected) == 5
    assert {"f2", "f3"} <= set(result.selected)


def test_near_duplicates_are_pruned_with_a_reason(result) -> None:
    table = result.table.set_index("feature")
    dropped = [f for f in ("f0", "f1") if "|ρ|" in table.loc[f, "reason"]]
    assert len(dropped) == 1
    other = {"f0", "f1"} - set(dropped)
    assert f"with {other.pop()}" in table.loc[dropped[0], "reason"]


def test_every_candidate_has_a_row_and_stability_in_range(result) -> None:
    assert sorted(result.table["feature"]) == sorted(f"f{i}" for i in range(N_FEATURES))
    ranked = result.table.dropna(subset=["rank"])
    assert ranked["stability"].between(0, 1).all()
    assert -1 <= result.fold_rank_agreement <= 1


def test_uplift_is_measured_on_validation_rows(result) -> None:
    uplift = result.uplift
    assert uplift["validation_rows"] > 0
    assert uplift["validation_start"] >= "2021-04-15T04:00:00+00:00"  # train end + embargo
    assert uplift["selected_5"]["accuracy"] > uplift["majority_class_accuracy"]
    assert set(uplift["all_12"]) == {"accuracy", "log_loss"}


def test_candles_after_training_end_do_not_change_the_selection(result) -> None:
    data, features = synthetic()
    after = data["timestamp"] > pd.Timestamp(CFG.train_end, tz="UTC")
    rng = np.random.default_rng(99)
    data.loc[after, features] = rng.normal(size=(int(after.sum()), len(features)))
    data.loc[after, "label"] = rng.integers(0, 2, size=int(after.sum())).astype(float)
    changed = select_features(data, features, CFG)
    assert changed.selected == result.selected
    pd.testing.assert_series_equal(
        changed.table.set_index("feature")["importance_mean"],
        result.table.set_index("feature")["importance_mean"],
    )


def test_walk_forward_folds_are_embargoed_and_expanding() -> None:
    times = pd.Series(pd.date_range("2021-01-01", periods=100, freq="h", tz="UTC"))
    folds = walk_forward_folds(times, 3, pd.Timedelta(hours=4))
    assert len(folds) == 3
    for train_idx, val_idx in folds:
        assert times[val_idx].min() - times[train_idx].max() > pd.Timedelta(hours=4)
    assert len(folds[0][0]) < len(folds[1][0]) < len(folds[2][0])


def test_too_little_training_data_is_refused() -> None:
    data, features = synthetic(hours=300)
    with pytest.raises(ValueError, match="too few to select"):
        select_features(data, features, CFG)


def test_uplift_interval_brackets_the_difference(result) -> None:
    low, high = result.uplift["accuracy_uplift_95ci"]
    assert low <= result.uplift["accuracy_uplift"] <= high
    assert high - low > 0


def test_day_bootstrap_covers_a_known_mean() -> None:
    from pipeline.stats import day_block_bootstrap

    times = pd.Series(pd.date_range("2021-01-01", periods=24 * 200, freq="h", tz="UTC"))
    diff = np.random.default_rng(1).normal(0.02, 0.5, len(times))
    low, high = day_block_bootstrap(times, diff, draws=500)
    assert low < diff.mean() < high
    assert high - low < 0.1
