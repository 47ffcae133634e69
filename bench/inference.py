"""Inference latency: one explained decision, and windows per second in a batch.

    .venv/bin/python bench/inference.py [--decisions 2000] [--batch 10000]

A freshly initialised LSTM of the default shape (50 features, default window; the weights do not
change the cost) decides on random windows already in memory. Printed: p50 and p99 of
`decide` (scale → probability → side → gradient × input explanation → input hash), the same
without the explanation, and windows per second for `decide_many` (one window at a time, as
decisions are made) beside a batched `probabilities` call (what calibration uses).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from pipeline.model.contract import probabilities
from pipeline.model.lstm import LSTMClassifier, count_parameters
from pipeline.model.operating import sides
from pipeline.model.training import TrainConfig
from pipeline.signals.inference import decide, decide_many

FEATURES = [f"f{i}" for i in range(50)]


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):.3f} ms   p99 {np.percentile(ms, 99):.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=TrainConfig().window)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = LSTMClassifier(len(FEATURES)).eval()
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(max(args.decisions, args.batch), args.window, len(FEATURES)))
    windows = windows.astype(np.float32)

    def identity(x: np.ndarray) -> np.ndarray:
        return x

    print(
        f"model: {count_parameters(model)} parameters, window {args.window}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    for _ in range(50):  # warm-up
        decide(model, windows[0], identity, FEATURES, model_id=1, market="X", timestamp=0)
    explained, bare = [], []
    for i in range(args.decisions):
        start = time.perf_counter()
        decide(model, windows[i], identity, FEATURES, model_id=1, market="X", timestamp=i)
        explained.append(time.perf_counter() - start)
    for i in range(args.decisions):
        start = time.perf_counter()
        sides(probabilities(model, windows[i : i + 1], batch_size=1), 0.65)
        bare.append(time.perf_counter() - start)
    print(f"one decision with explanation and hash: {percentiles(explained)}")
    print(f"one decision, probability and side only: {percentiles(bare)}")
    batch = windows[: args.batch]
    start = time.perf_counter()
    decide_many(model, batch, 0.65)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    probabilities(model, batch, batch_size=4096)
    batched = time.perf_counter() - start
    print(
        f"{args.batch} windows, decide_many (one at a time, bit-equal to live): "
        f"{args.batch / one_by_one:,.0f} windows/s"
    )
    print(
        f"{args.batch} windows, batched probabilities (4096 a batch): "
        f"{args.batch / batched:,.0f} windows/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
