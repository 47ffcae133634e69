"""The JSON IO manager that carries lstm_model's id from one run to the next."""

from pathlib import Path

import dagster as dg
import pytest

from resources.io_managers import JsonIOManager


def test_a_value_written_by_one_run_is_read_by_another(tmp_path: Path) -> None:
    key = dg.AssetKey("lstm_model")
    JsonIOManager(base_uri=str(tmp_path)).handle_output(dg.build_output_context(asset_key=key), 42)
    fresh = JsonIOManager(base_uri=str(tmp_path))  # another process: nothing in memory
    assert fresh.load_input(dg.build_input_context(asset_key=key)) == 42
    assert (tmp_path / "lstm_model.json").read_text() == "42"


def test_reading_before_anything_was_written_names_the_asset(tmp_path: Path) -> None:
    context = dg.build_input_context(asset_key=dg.AssetKey("lstm_model"))
    with pytest.raises(FileNotFoundError, match=r"lstm_model.*materialise it first"):
        JsonIOManager(base_uri=str(tmp_path)).load_input(context)
