"""The code location imports light.

Every Dagster run is a new process that imports `pipeline.definitions` before anything else, so
a heavy library imported at module level by anything the Definitions import is paid by every
run (torch alone: seconds of CPU). Heavy libraries are imported where they are used (asset and
op bodies, resource methods, the domain functions that need them); these tests fail when one
comes back. `bench/import_weight.py` measures what the import and a live run cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Each costs from a few tenths of a second (numba, sqlalchemy, pandera) to seconds (torch,
# ccxt) per process. What stays: Dagster itself, and pandas, because Dagster resolves the
# assets' `pd.DataFrame` annotations when it builds their definitions.
HEAVY = (
    "torch",
    "ccxt",
    "optuna",
    "matplotlib",
    "sklearn",
    "scipy",
    "numba",
    "sqlalchemy",
    "pandera",
)

# After the Definitions, a decision of the portfolio's default scorer (boosting trees) the way
# the live job makes it: loaded from a record, one explained decision. numba runs the trees;
# torch is for an LSTM only.
GBM_DECISION = """
import types
import numpy as np
from pipeline.model.scorer import load_scorer
from pipeline.model.trees import TreeEnsemble
from pipeline.signals.inference import decide_scorer

stump = TreeEnsemble(
    feature=np.array([0, 0, 0]),
    threshold=np.array([0.5, 0.0, 0.0]),
    missing_left=np.array([True, False, False]),
    left=np.array([1, 0, 0]),
    right=np.array([2, 0, 0]),
    leaf=np.array([False, True, True]),
    value=np.array([0.0, -1.0, 1.0]),
    offsets=np.array([0, 3]),
    baseline=0.0,
    n_features=2,
)
record = types.SimpleNamespace(
    id=7, config={"scorer": "gbm"}, features=["a", "b"], checkpoint=stump.to_bytes()
)
decision = decide_scorer(
    load_scorer(record, ["a", "b"]), np.array([[0.1, 0.2], [0.9, 0.3]]), market="m", timestamp=0
)
report["p_up"] = decision.probability_up
report["after_decision"] = "torch" in sys.modules
"""


def _loaded(strategy: str, then: str = "") -> dict:
    code = (
        "import json, sys\n"
        "import pipeline.definitions\n"
        f"report = {{'definitions': sorted(m for m in {HEAVY!r} if m in sys.modules)}}\n"
        f"{then}\n"
        "print(json.dumps(report))\n"
    )
    env = {**os.environ, "SIGNALS_STRATEGY": strategy}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_portfolio_location_and_a_boosting_decision_import_no_heavy_library() -> None:
    report = _loaded("portfolio", GBM_DECISION)
    assert report["definitions"] == []
    assert report["p_up"] == pytest.approx(1 / (1 + 2.718281828459045**-1.0))  # the right leaf
    assert report["after_decision"] is False  # torch never loads for a boosting model


def test_the_barrier_location_imports_no_heavy_library() -> None:
    assert _loaded("barrier")["definitions"] == []
