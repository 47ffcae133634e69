"""A study's trials for a reader: the best complete trials first, and the objective's plot."""

from pathlib import Path

import pandas as pd

from pipeline.evaluation.study_report import best_trials_table, objective_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trials() -> pd.DataFrame:
    """Five trials as `window_search.trials_frame` gives them: two pruned (no value)."""
    values = [0.4, None, 1.2, None, -0.3]
    return pd.DataFrame(
        {
            "number": range(5),
            "state": ["complete" if v is not None else "pruned" for v in values],
            "value": values,
            "window": [8, 16, 24, 4, 8],
            "hidden": [56, 48, 32, 64, 24],
            "n_parameters": [24_249, 19_249, 10_785, 29_761, 7_321],
            "dropout": [0.1, 0.2, 0.3, 0.4, 0.0],
            "lr": [1e-3] * 5,
            "weight_decay": [1e-5] * 5,
            "horizon": [12, 6, 24, 12, 6],
            "barrier_k": [1.5, 1.0, 2.0, 1.5, 1.0],
            "coverage": [0.1, 0.05, 0.2, 0.35, 0.15],
            "seconds": [3.0] * 5,
        }
    )


def test_the_table_lists_complete_trials_best_first() -> None:
    lines = best_trials_table(_trials(), n=2).splitlines()
    assert lines[0] == (
        "| number | value | window | hidden | n_parameters | dropout | lr | weight_decay "
        "| horizon | barrier_k | coverage |"
    )
    assert len(lines) == 4  # header, rule, the two best
    assert lines[2].startswith("| 2 | +1.200 | 24 | 32 | 10,785 | 0.30 |")
    assert lines[3].startswith("| 0 | +0.400 |")


def test_the_plot_is_a_png_even_with_every_trial_pruned(tmp_path: Path) -> None:
    trials = _trials()
    assert objective_png(trials, tmp_path / "a.png", "study").read_bytes()[:8] == PNG_MAGIC
    pruned = trials.assign(state="pruned", value=None)
    assert objective_png(pruned, tmp_path / "b.png", "none").read_bytes()[:8] == PNG_MAGIC
