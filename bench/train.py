"""Training throughput of `train_model` beside a bare PyTorch loop, and the FLOP fraction reached.

    .venv/bin/python bench/train.py                      # 40k windows × 32 × 50, CPU or CUDA
    .venv/bin/python bench/train.py --epochs 3 --json /tmp/train.json

Lines of the table (all in one process, same model shape, seed, optimizer and loss):

- `train_model (ours)`: the training pass of `train_model`'s epoch loop (its `train_seconds`:
  DataLoader + EpochBatches sampler + on-demand window gather from the row array,
  class-weighted loss, Adam, gradient clipping), with its determinism settings on as the
  product runs (CPU: deterministic algorithms; CUDA: cuDNN deterministic, no benchmark).
- `bare loop, same settings`: the same step over pre-built, pre-shuffled tensor batches
  (each its own contiguous [B, L, F] tensor, all materialised up front), its own model and
  optimizer; one bare epoch runs after each of ours (from `on_epoch`, so inside
  `train_model`'s determinism settings), interleaving the two so that drift hits both.
  `overhead` = ours s/epoch ÷ bare s/epoch − 1.
- `bare loop, default settings`: the same, torch's default settings: what determinism costs.
- `train_model whole epoch`: training pass + the per-epoch evaluation (train probe and
  validation in eval mode), i.e. wall time per epoch; its GFLOP/s counts training FLOPs only.

FLOPs per window (matmuls only, 2 per multiply-add): forward = 2 · (L · Σ_layers 4h(in + h) +
h), in = F for the first layer and h after; training = 3 × forward (the usual convention;
the input needs no gradient, so the exact count is 4h(2F + 3h) per step, ~16 % lower at
F = 50, h = 56: the "% peak" column is an upper bound). Peak fp32 FLOP/s is the
best of a few large square matmuls (n = 4096 on CPU, 8192 on CUDA, TF32 off) in the same run.
Timed epochs exclude the first (warm-up); the table gives the median epoch and the spread
(slowest − fastest) ÷ median, so run-to-run noise is visible beside each figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the synthetic frame: tests/helpers

from pipeline.model.dataset import make_windows
from pipeline.model.lstm import (
    LSTMClassifier,
    count_parameters,
    lstm_flops_per_sample,
)
from pipeline.model.sampling import class_weights
from pipeline.model.scaler import Scaler
from pipeline.model.training import (
    TrainConfig,
    resolve_device,
    seed_everything,
    train_model,
    weighted_loss,
)
from tests.helpers.model import feature_columns, synthetic_frame


def peak_flops(device: torch.device, repeat: int = 3) -> float:
    n = 8192 if device.type == "cuda" else 4096
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeat + 1):  # the first is a warm-up
        _sync(device)
        start = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class BareLoop:
    """The plain loop over pre-built batches: its own model, optimizer and batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, weights) -> None:
        self.device, self.cfg, self.weights = x.device, cfg, weights
        seed_everything(cfg.seed)
        model = LSTMClassifier(x.shape[2], cfg.hidden, cfg.layers, cfg.dropout)
        self.model = model.to(self.device).train()
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(x), generator=gen).to(self.device)
        xs, ys = x[order], y[order]
        self.batches = [
            (xs[i : i + cfg.batch_size].clone(), ys[i : i + cfg.batch_size].clone())
            for i in range(0, len(xs), cfg.batch_size)
        ]

    def epoch(self) -> float:
        model, opt = self.model, self.opt
        _sync(self.device)
        start = time.perf_counter()
        for xb, yb in self.batches:
            opt.zero_grad(set_to_none=True)
            loss = weighted_loss(model(xb), yb, self.weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
            opt.step()
        _sync(self.device)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=40_000, help="training windows")
    parser.add_argument("--val", type=int, default=8_000, help="validation windows")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=56)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per line (first: warm-up)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    markets = 5
    rows = (args.windows + args.val) // markets + args.window
    start = time.perf_counter()
    frame = synthetic_frame(markets, rows, args.features, signal=0.1, seed=0)
    ws = make_windows(frame, feature_columns(frame), args.window, "1h")
    windows_s = time.perf_counter() - start
    train, val = ws.take(np.arange(args.windows)), ws.take(np.arange(args.windows, len(ws)))
    scaler = Scaler.fit(train)
    cfg = TrainConfig(
        window=args.window,
        hidden=args.hidden,
        layers=args.layers,
        batch_size=args.batch,
        max_epochs=args.epochs,
        patience=args.epochs,
        gap_bound=1.0,
        device=str(device),
    )

    scaled = scaler.apply(train)
    x = torch.from_numpy(np.asarray(scaled.X)).to(device)
    y = torch.from_numpy(scaled.y).to(device)
    weights = torch.tensor(class_weights(train.y), dtype=torch.float32, device=device)
    bare = BareLoop(x, y, cfg, weights)
    bare_det: list[float] = []
    # One bare epoch after each of ours, inside train_model's settings: drift hits both alike.
    result = train_model(train, val, cfg, scaler, on_epoch=lambda _: bare_det.append(bare.epoch()))
    timed = result.epochs[1:] or result.epochs
    ours = [e["train_seconds"] for e in timed]
    whole = [e["seconds"] for e in timed]
    bare_det = bare_det[1:] or bare_det
    free = BareLoop(x, y, cfg, weights)
    bare_free = [free.epoch() for _ in range(args.epochs)][1:]

    peak = peak_flops(device)
    flops = lstm_flops_per_sample(args.features, args.hidden, args.layers, args.window)["train"]
    n = len(train)
    lines = [
        ("train_model (ours), training pass", ours),
        ("bare loop, same settings", bare_det),
        ("bare loop, default settings", bare_free),
        ("train_model whole epoch (+eval)", whole),
    ]
    params = count_parameters(LSTMClassifier(args.features, args.hidden, args.layers))
    print(
        f"device {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}; "
        f"{n:,} training windows × {args.window} × {args.features}, batch {args.batch}, "
        f"hidden {args.hidden} × {args.layers} layer(s), {params:,} parameters"
    )
    print(
        f"make_windows: {len(ws):,} windows in {windows_s:.2f} s (synthetic frame included); "
        f"row array {ws.X.values.nbytes / 1e6:.1f} MB vs {ws.X.nbytes_materialised / 1e6:.0f} MB "
        "materialised"
    )
    print(
        f"FLOPs per training window {flops / 1e6:.2f} M (3 × forward); "
        f"peak fp32 matmul {peak / 1e9:.1f} GFLOP/s"
    )
    print()
    header = (
        f"{'line':<36} {'s/epoch':>8} {'spread':>7} {'samples/s':>10} {'÷ bare':>7} "
        f"{'GFLOP/s':>8} {'% peak':>7}"
    )
    print(header)
    print("-" * len(header))
    bare = float(np.median(bare_det))
    table = []
    for name, epochs in lines:
        seconds = float(np.median(epochs))
        rate = n / seconds
        row = {
            "line": name,
            "seconds": seconds,
            "epochs": epochs,
            "spread": (max(epochs) - min(epochs)) / seconds,
            "samples_per_s": rate,
            "rate_vs_bare": bare / seconds,
            "gflops": rate * flops / 1e9,
            "peak_fraction": rate * flops / peak,
        }
        table.append(row)
        print(
            f"{name:<36} {seconds:>8.3f} {100 * row['spread']:>6.1f}% {rate:>10,.0f} "
            f"{row['rate_vs_bare']:>7.2f} {row['gflops']:>8.1f} {100 * row['peak_fraction']:>6.2f}%"
        )
    overhead = float(np.median(ours)) / bare - 1
    print()
    verdict = "met" if overhead <= 0.10 else "NOT met"
    print(
        f"loop overhead (ours ÷ bare median seconds − 1, same settings): {100 * overhead:+.1f} % "
        f"(goal ≤ 10 %: {verdict}); {len(ours)} timed epochs per line after 1 warm-up"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "peak_flops": peak, "lines": table}, out, indent=2)


if __name__ == "__main__":
    main()
