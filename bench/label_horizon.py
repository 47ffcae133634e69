"""How far ahead should labels look? A study on the training window only.

For each candidate horizon H (in base candles) it labels the five sample markets, fits the
selection's quick gradient-boosting model on all 79 features in embargoed walk-forward folds
inside the training window (candles up to --train-end, default 2022-06-30), and prints per H:
the mean fold AUC and log-loss skill (1 − log-loss / log-loss of the training base rate), the
share of up labels, and the median absolute H-candle move beside the round-trip taker cost.

The rule, fixed before looking: take the H with the best mean log-loss skill among horizons
whose median absolute move is at least twice the round-trip cost (default 2 × 0.05 % a side,
so 0.2 %): a direction that cannot pay its fees is not worth predicting.

    .venv/bin/python bench/label_horizon.py [--data-dir DIR] [--train-end 2022-06-30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from harness import default_data_dir
from sklearn.metrics import log_loss, roc_auc_score

from pipeline.data.csv_source import CandleFolder
from pipeline.features.compute import compute_features
from pipeline.features.labels import attach_labels
from pipeline.features.registry import feature_names
from pipeline.features.selection import (
    SelectionConfig,
    _model,
    _thin,
    split_windows,
    walk_forward_folds,
)

REPO = Path(__file__).resolve().parents[1]
HORIZONS = (1, 2, 4, 8, 12, 24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--train-end", default="2022-06-30")
    parser.add_argument("--fee", type=float, default=0.0005, help="taker fee a side")
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args(argv)

    folder = CandleFolder(args.data_dir)
    candles = {s: folder.read(s) for s in folder.symbols()}
    started = time.perf_counter()
    matrix = compute_features(candles, "1h")
    names = feature_names()
    round_trip = 2 * args.fee
    print(
        f"features: {len(matrix)} rows in {time.perf_counter() - started:.1f} s; "
        f"training window ends {args.train_end}; round-trip cost {round_trip:.2%}"
    )
    print(
        f"{'H':>3} {'train rows':>10} {'up share':>8} {'median |move|':>13} "
        f"{'AUC':>6} {'LL skill':>9}  folds AUC"
    )
    rows = []
    for horizon in HORIZONS:
        cfg = SelectionConfig(train_end=args.train_end, horizon=horizon, folds=args.folds)
        data = attach_labels(matrix, candles, "1h", horizon).dropna(subset=[*names, "label"])
        train, _ = split_windows(data.sort_values(["timestamp", "market"]), cfg)
        folds = walk_forward_folds(
            train["timestamp"], cfg.folds, pd.Timedelta(hours=cfg.embargo_candles)
        )
        aucs, skills = [], []
        for fit_idx, val_idx in folds:
            fit, val = _thin(train.iloc[fit_idx], cfg.max_rows), train.iloc[val_idx]
            model = _model(cfg).fit(fit[names].to_numpy(), fit["label"].to_numpy())
            proba = model.predict_proba(val[names].to_numpy())[:, 1]
            y = val["label"].to_numpy()
            prior = np.full(len(y), fit["label"].mean())
            aucs.append(roc_auc_score(y, proba))
            skills.append(1 - log_loss(y, proba, labels=[0, 1]) / log_loss(y, prior, labels=[0, 1]))
        move = float(np.median(np.abs(train["forward_return"])))
        rows.append((horizon, float(np.mean(skills)), move))
        print(
            f"{horizon:>3} {len(train):>10} {train['label'].mean():>8.3f} {move:>12.3%} "
            f"{np.mean(aucs):>6.4f} {np.mean(skills):>+9.5f}  " + " ".join(f"{a:.3f}" for a in aucs)
        )
    eligible = [r for r in rows if r[2] >= 2 * round_trip]
    if not eligible:
        print("no horizon clears twice the round-trip cost")
        return 1
    best = max(eligible, key=lambda r: r[1])
    print(
        f"chosen: H = {best[0]} (best log-loss skill among horizons whose median move ≥ "
        f"{2 * round_trip:.2%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
