"""Which window length L? Chosen on validation, never on test.

For each L it fits the LSTM (default settings, seed 0) on the five sample markets with the
selection the main job stores (or, without one, the first 50 registry features), training on
candles to --train-end and early-stopping and scoring on validation to --val-end, and prints
validation accuracy, log-loss, the best epoch and seconds. The rule, fixed before looking:
the lowest validation log-loss rounded to three decimals; a tie goes to the shorter window
(cheaper, and fewer rows lost to warm-up).

    .venv/bin/python bench/window_length.py [--lengths 8,16,32,64]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from harness import default_data_dir
from sklearn.metrics import log_loss

from pipeline.data.csv_source import CandleFolder
from pipeline.evaluation.candidate import CandidateConfig, fit_candidate
from pipeline.features.compute import compute_features
from pipeline.features.labels import LabelRule, attach_labels
from pipeline.features.registry import feature_names
from pipeline.model.dataset import make_windows
from pipeline.model.splits import chronological_split
from pipeline.model.training import TrainConfig, predict_proba

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--train-end", default="2022-06-30")
    parser.add_argument("--val-end", default="2022-12-31")
    parser.add_argument("--lengths", default="8,16,32,64")
    parser.add_argument("--selection", default=".signals/store/selected_features.parquet")
    args = parser.parse_args(argv)

    folder = CandleFolder(args.data_dir)
    candles = {s: folder.read(s) for s in folder.symbols()}
    data = attach_labels(compute_features(candles, "1h"), candles, "1h", LabelRule())
    if Path(args.selection).exists():
        table = pd.read_parquet(args.selection)
        features = table.loc[table["selected"], "feature"].tolist()
        origin = args.selection
    else:
        features, origin = feature_names()[:50], "first 50 registry features"
    print(
        f"features: {len(features)} ({origin}); train to {args.train_end}, "
        f"validation to {args.val_end}"
    )
    print(
        f"{'L':>3} {'val acc':>8} {'val logloss':>11} {'best epoch':>10} {'val windows':>11} "
        f"{'seconds':>8}"
    )
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        cfg = CandidateConfig(
            train_start="2020-10-23",
            train_end=args.train_end,
            val_end=args.val_end,
            train=replace(TrainConfig(), window=length),
        )
        started = time.perf_counter()
        candidate = fit_candidate(data, features, cfg)
        windows = make_windows(data, features, length, "1h")
        val = chronological_split(windows, cfg.split()).validation
        p = predict_proba(candidate.result.model(), candidate.scaler.apply(val).X)
        loss = log_loss(val.y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])
        rows.append((length, loss))
        print(
            f"{length:>3} {candidate.validation['val_accuracy']:>8.4f} {loss:>11.5f} "
            f"{candidate.result.best_epoch:>10} {len(val):>11} "
            f"{time.perf_counter() - started:>8.0f}"
        )
    best = min(rows, key=lambda r: (round(r[1], 3), r[0]))
    print(f"chosen: L = {best[0]} (lowest validation log-loss to 3 decimals; ties to the shorter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
