"""The one markdown table helper: its exact output, and refusals of ragged input."""

import pytest

from pipeline.tables import markdown_table


def test_compact_pipe_table_with_alignment():
    text = markdown_table(["strategy", "trades", "Sharpe"], [["lstm", 3, "0.50"]], align="lrr")
    assert text == "| strategy | trades | Sharpe |\n|---|---:|---:|\n| lstm | 3 | 0.50 |"


def test_left_aligned_by_default_and_no_rows():
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|"


@pytest.mark.parametrize(
    ("rows", "align"), [([["x"]], None), ([["x", "y"]], "l")], ids=["ragged row", "align"]
)
def test_mismatched_shapes_are_refused(rows, align):
    with pytest.raises(ValueError, match=r"cells|alignment"):
        markdown_table(["a", "b"], rows, align=align)


def test_a_pipe_inside_a_cell_is_escaped():
    text = markdown_table(["feature", "why"], [["a", "|ρ| = 0.97 with b"]])
    assert text.splitlines()[2] == "| a | \\|ρ\\| = 0.97 with b |"
