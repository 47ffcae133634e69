"""Model search throughput: trials per hour with one and with two workers on one study, and
where a trial's time goes.

Run on demand (never part of the test suite):

    .venv/bin/python bench/tuning.py                 # 12 trials a run, 5 markets
    .venv/bin/python bench/tuning.py --trials 6 --markets BTCUSDT,ETHUSDT

The search is the first walk-forward refit's: training window 2020-10-23 → 2021-12-31 (nothing
of the held-out years 2022 and 2023 is read), 50 features selected on it once, the default
search space, inner folds and trial settings (`pipeline.evaluation.window_search`). Three
runs, each a new study of `--trials` trials in the project's PostgreSQL (SIGNALS_DATABASE_URL,
else the embedded server of SIGNALS_HOME), each sampler seeded the same:

- 1 worker, torch's default threads (the reference);
- 2 worker processes sharing the cores out (`worker_threads`: 1 torch thread each here), what
  `signals tune --workers 2` does;
- 2 worker processes with torch's default threads each (oversubscribed; what it did before).

Trials per hour = trials / wall seconds × 3600, the wall time counting the workers' start
(spawned processes import torch and recompute the features). The samplers differ per worker
(seed + i), so the runs do not try the same points: the ratio carries that noise too. Every
trial is appended to the trials ledger (kind `tuning`), as any tuning trial is.

Where a trial goes (1-worker run, in process): the functions `fit_candidate` calls are wrapped
with `time.perf_counter` for the run's duration (labels, windows and splits, LSTM training
(`fit_model`: passes plus per-epoch scoring), the operating-point choice (validation replays),
features); "pure training passes" are the epochs' `train_seconds`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from harness import default_data_dir  # noqa: E402

from pipeline.data.csv_source import CandleFolder  # noqa: E402
from pipeline.evaluation import candidate, window_search  # noqa: E402
from pipeline.evaluation.tuning import (  # noqa: E402
    StudySpec,
    open_study,
    run_workers,
    worker_threads,
)
from pipeline.evaluation.window_search import (  # noqa: E402
    WindowObjective,
    search_on_window,
    trials_frame,
)
from pipeline.exchange.markets import normalise_symbol  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.store.database import resolve_url  # noqa: E402
from pipeline.store.studies import study_database_url  # noqa: E402

FIT_START, FIT_END = "2020-10-23", "2021-12-31"
MARKETS = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT"
PHASES = {
    "labels": (candidate, ("attach_labels",)),
    "windows + splits": (candidate, ("make_windows", "chronological_split", "segment_windows")),
    "LSTM training": (candidate, ("fit_model",)),
    "operating point": (candidate, ("choose_operating_point",)),
    "features": (window_search, ("compute_features",)),
}


@contextmanager
def timed(spent: dict[str, float]) -> Iterator[None]:
    """Wrap each phase's functions in their modules' namespaces; restore them afterwards."""
    saved = []
    for phase, (module, names) in PHASES.items():
        for name in names:
            original = getattr(module, name)
            saved.append((module, name, original))
            setattr(module, name, _clock(original, phase, spent))
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _clock(fn: Callable, phase: str, spent: dict[str, float]) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - started

    return wrapper


def run(
    objective: WindowObjective, url: str, trials: int, workers: int, threads: int | None = None
) -> dict[str, float]:
    spec = StudySpec(f"bench-{uuid.uuid4().hex[:8]}-{workers}w", url, trials, seed=0)
    objective.study = spec.name
    started = time.perf_counter()
    ran = run_workers(spec, objective, workers, threads)
    wall = time.perf_counter() - started
    table = trials_frame(open_study(spec))
    return {
        "wall": wall,
        "trials": float(sum(ran)),
        "per_hour": sum(ran) / wall * 3600,
        "trial_seconds": float(table["seconds"].sum()),
        "train_seconds": float(table["train_seconds"].sum()),
        "pruned": float((table["state"] == "pruned").sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--markets", default=MARKETS)
    parser.add_argument("--trials", type=int, default=12, help="trials per run (default 12)")
    args = parser.parse_args()
    markets = tuple(normalise_symbol(m) for m in args.markets.split(","))
    folder = CandleFolder(args.data_dir)
    candles = {m: folder.read(m, "1h") for m in markets}
    server = resolve_url(Settings.from_env())
    url = study_database_url(server)
    started = time.perf_counter()
    search = search_on_window(candles, markets, FIT_START, FIT_END)
    print(f"selected {len(search.selected)} features in {time.perf_counter() - started:.0f} s")
    objective = WindowObjective(search, candles, ledger_url=server)

    spent: dict[str, float] = defaultdict(float)
    with timed(spent):
        one = run(objective, url, args.trials, 1)
    two_split = run(objective, url, args.trials, 2)
    two_over = run(objective, url, args.trials, 2, threads=os.cpu_count() or 1)

    print(f"\n{args.trials} trials a run, {len(markets)} markets, window {FIT_START} → {FIT_END}")
    print("| run | wall s | trials | pruned | trials / hour | vs 1 worker |")
    print("|---|---|---|---|---|---|")
    for name, r in (
        ("1 worker (reference)", one),
        (f"2 workers, {worker_threads(2)} thread(s) each (the default)", two_split),
        (f"2 workers, {os.cpu_count()} threads each", two_over),
    ):
        print(
            f"| {name} | {r['wall']:.0f} | {r['trials']:.0f} | {r['pruned']:.0f} | "
            f"{r['per_hour']:.0f} | {r['per_hour'] / one['per_hour']:.2f}× |"
        )
    print(f"\nWhere a trial's time goes (1-worker run, {one['trial_seconds']:.0f} s in trials):")
    print("| phase | seconds | share of trial time |")
    print("|---|---|---|")
    for phase in PHASES:
        print(f"| {phase} | {spent[phase]:.1f} | {spent[phase] / one['trial_seconds']:.0%} |")
    rest = one["trial_seconds"] - sum(spent.values())
    print(f"| other (ledger, logging, Optuna) | {rest:.1f} | {rest / one['trial_seconds']:.0%} |")
    print(
        f"| of which pure training passes | {one['train_seconds']:.1f} | "
        f"{one['train_seconds'] / one['trial_seconds']:.0%} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
