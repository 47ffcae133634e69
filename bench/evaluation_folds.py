"""Walk-forward evaluation: wall time, how it grows with the number of folds, and where it goes.

Run on demand (never part of the test suite):

    .venv/bin/python bench/evaluation_folds.py                # folds 1, 2, 4
    .venv/bin/python bench/evaluation_folds.py --folds 1,2    # fewer runs

Runs `pipeline.evaluation.walk_forward.evaluate` on BTC and ETH (1h sample candles cut before
2022-01-01, so nothing of the held-out years 2022 and 2023 is read) with a fixed label rule
(T = 12, k = 1.0: no label search), `max_epochs` 2 and 100 random-entry draws, fit from
2020-11-01 to 2021-06-30 and test 2021-07-01 → 2021-12-31, once per fold count. No ledger is
given: these looks are machinery timings, never figures to quote, and nothing is recorded.

The phases are timed by wrapping, for the run's duration, the functions `evaluate` looks up in
its module (`compute_features`, `select_features`, `make_windows` and `segment_windows`,
`fit_model`, `baseline_probabilities` and `momentum_probability`, `choose_operating_point`,
`compare_strategies` and `_cost_sensitivity`, `random_entries`) with `time.perf_counter`;
the pipeline's code is not changed (in the table: selection = feature selection, op. point =
operating-point choice, random = random entries). "other" is the wall time none of them
covers (the LSTM's predictions, labels, reports and metrics). Per fold count the table gives
wall seconds, seconds per fold, and each phase's share of the wall time; the last lines fit
wall = fixed + per-fold × folds by least squares over the runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import default_data_dir  # noqa: E402

from pipeline.data.csv_source import CandleFolder  # noqa: E402
from pipeline.evaluation import walk_forward  # noqa: E402
from pipeline.evaluation.walk_forward import EvaluationConfig, evaluate  # noqa: E402
from pipeline.features.labels import LabelRule  # noqa: E402
from pipeline.model.training import TrainConfig  # noqa: E402

MARKETS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
CUT = pd.Timestamp("2022-01-01", tz="UTC").value // 1_000_000  # held-out years start here

# Phase name -> the functions of walk_forward's namespace it covers (none nests another).
PHASES = {
    "features": ("compute_features",),
    "selection": ("select_features",),
    "windows": ("make_windows", "segment_windows"),
    "training": ("fit_model",),
    "baselines": ("baseline_probabilities", "momentum_probability"),
    "op. point": ("choose_operating_point",),
    "backtests": ("compare_strategies", "_cost_sensitivity"),
    "random": ("random_entries",),
}


@contextmanager
def phase_timers() -> Iterator[dict[str, float]]:
    """Seconds per phase while inside; walk_forward's functions are restored on exit."""
    spent: dict[str, float] = defaultdict(float)
    originals: dict[str, Callable] = {}

    def wrap(phase: str, fn: Callable) -> Callable:
        def timed_call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - start

        return timed_call

    for phase, names in PHASES.items():
        for name in names:
            originals[name] = getattr(walk_forward, name)
            setattr(walk_forward, name, wrap(phase, originals[name]))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(walk_forward, name, fn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(default_data_dir()))
    parser.add_argument("--folds", default="1,2,4", help="fold counts, comma-separated")
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--random-draws", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="no timestamped log lines")
    args = parser.parse_args()
    counts = [int(x) for x in args.folds.split(",")]

    folder = CandleFolder(args.data_dir)
    candles = {}
    for symbol in MARKETS:
        frame = folder.read(symbol)
        candles[symbol] = frame[frame["timestamp"] < CUT].reset_index(drop=True)
    base = EvaluationConfig(
        markets=MARKETS,
        train_start="2020-11-01",
        train_end="2021-06-30",
        test_start="2021-07-01",
        test_end="2021-12-31",
        label=LabelRule(horizon=12, barrier_k=1.0),
        random_draws=args.random_draws,
        train=replace(TrainConfig(), max_epochs=args.max_epochs),
    )
    import torch

    print(
        f"evaluation bench: {', '.join(MARKETS)}, fit {base.train_start}…{base.train_end}, "
        f"test {base.test_start}…{base.test_end}, label T=12 k=1.0 fixed, "
        f"max_epochs {args.max_epochs}, {args.random_draws} random draws, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), no ledger"
    )

    rows = []
    for folds in counts:
        cfg = replace(base, folds=folds)
        t0 = time.perf_counter()

        def log(message: str, t0: float = t0, folds: int = folds) -> None:
            if not args.quiet:
                print(f"  [{folds} fold(s) +{time.perf_counter() - t0:7.1f} s] {message}")

        with phase_timers() as spent:
            start = time.perf_counter()
            evaluate(candles, cfg, log=log)
            wall = time.perf_counter() - start
        rows.append((folds, wall, dict(spent)))

    names = list(PHASES)
    head = f"{'folds':>5} {'wall s':>8} {'s/fold':>7} " + " ".join(
        f"{n:>10}" for n in [*names, "other"]
    )
    print(head)
    for folds, wall, spent in rows:
        shares = [spent.get(n, 0.0) / wall for n in names]
        shares.append(1 - sum(shares))
        print(
            f"{folds:>5} {wall:8.1f} {wall / folds:7.1f} " + " ".join(f"{s:10.1%}" for s in shares)
        )
    print("seconds per phase:")
    for folds, wall, spent in rows:
        other = wall - sum(spent.values())
        parts = ", ".join(f"{n} {spent.get(n, 0.0):.1f}" for n in names)
        print(f"  {folds} fold(s): {parts}, other {other:.1f}")
    if len(rows) >= 2:
        x = np.array([r[0] for r in rows], dtype=float)
        y = np.array([r[1] for r in rows])
        per_fold, fixed = np.polyfit(x, y, 1)
        print(f"fit: wall ≈ {fixed:.1f} s + {per_fold:.1f} s × folds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
