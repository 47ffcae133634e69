"""What every benchmark script shares: the sample folder's default and the timing loop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "binance-usdm-1h"


def default_data_dir() -> str:
    """$SIGNALS_DATA_DIR, else the shared sample folder beside the repository."""
    return os.environ.get("SIGNALS_DATA_DIR") or str(DEFAULT_DATA_DIR)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of `repeat` calls, after one untimed warm-up (imports, numba, allocator)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs
