"""The asset pages' plots: real PNGs from ordinary input, a clear error or a labelled empty
plot from empty input, and numbers and times as a reader sees them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.reporting.plots import (
    PNG_SIGNATURE,
    importance_png,
    png_markdown,
    reliability_png,
    training_curves_png,
)
from pipeline.reporting.text import rounded_json, significant, utc_text
from pipeline.signals.calibration import expected_calibration_error, reliability_table


def _epochs(n: int) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 0.70 - 0.01 * e,
            "val_loss": 0.69 - 0.002 * e,
            "train_accuracy": 0.52 + 0.01 * e,
            "val_accuracy": 0.51 + 0.002 * e,
            "gap": 0.01 + 0.008 * e,
            "seconds": 1.0,
        }
        for e in range(1, n + 1)
    ]


def test_training_curves_are_a_png_and_refuse_an_empty_history() -> None:
    png = training_curves_png(_epochs(6), best_epoch=4, gap_bound=0.15, title="model 1")
    assert png.startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="no epochs"):
        training_curves_png([], best_epoch=None)
    with pytest.raises(ValueError, match="lack val_loss"):
        training_curves_png([{k: v for k, v in _epochs(1)[0].items() if k != "val_loss"}])


def test_training_curves_draw_a_diverged_epoch_as_a_hole() -> None:
    epochs = _epochs(3)
    epochs[1]["val_loss"] = math.nan
    assert training_curves_png(epochs).startswith(PNG_SIGNATURE)


def test_reliability_diagram_from_the_ece_bins() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.35, 0.65, 2_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    table = reliability_table(p, y)
    png = reliability_png(table, expected_calibration_error(p, y), "validation")
    assert png.startswith(PNG_SIGNATURE)


def test_reliability_of_nothing_is_a_labelled_empty_plot() -> None:
    empty = reliability_table(np.array([]), np.array([]))
    assert reliability_png(empty, math.nan).startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match="lacks observed_up"):
        reliability_png(empty.drop(columns=["observed_up"]), 0.0)


def test_importance_chart_lists_pruned_features_apart() -> None:
    ranked = pd.DataFrame(
        {
            "feature": [f"f{i}" for i in range(12)],
            "importance_mean": np.linspace(0.01, -0.001, 12),
            "importance_std": np.full(12, 0.002),
            "selected": [True] * 8 + [False] * 4,
        }
    )
    assert importance_png(ranked, ["g1", "g2 (re-admitted)"], 8).startswith(PNG_SIGNATURE)
    assert importance_png(ranked.iloc[0:0], [], 8).startswith(PNG_SIGNATURE)  # labelled empty


def test_png_markdown_is_a_data_uri_of_png_bytes_only() -> None:
    png = training_curves_png(_epochs(2))
    text = png_markdown(png, "curves", "a caption")
    assert text.startswith("![curves](data:image/png;base64,") and text.endswith("a caption")
    with pytest.raises(ValueError, match="not PNG"):
        png_markdown(b"GIF89a", "x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.531187426, 0.5312), (12345.678, 12350.0), (-0.000123456, -0.0001235), (7, 7.0)],
)
def test_four_significant_digits(value: float, expected: float) -> None:
    assert significant(value) == expected


def test_undefined_figures_are_none_not_sentinels() -> None:
    assert [significant(v) for v in (None, math.nan, math.inf, -math.inf)] == [None] * 4


def test_json_shown_is_rounded_and_keeps_its_shape() -> None:
    value = {"threshold": 0.585663914680481, "edge": None, "ci": [0.1234567, math.nan], "n": 3}
    assert rounded_json(value) == {"threshold": 0.5857, "edge": None, "ci": [0.1235, None], "n": 3}


def test_times_are_utc_dates() -> None:
    assert utc_text(1688166000000) == "2023-06-30 23:00 UTC"  # epoch ms
    assert utc_text("2023-06-30T23:00:00+00:00") == "2023-06-30 23:00 UTC"
    assert utc_text(pd.Timestamp("2023-07-01 01:00", tz="Europe/Berlin")) == "2023-06-30 23:00 UTC"
    assert utc_text("2023-06-30 23:00") == "2023-06-30 23:00 UTC"  # naive: read as UTC
