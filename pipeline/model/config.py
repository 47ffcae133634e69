"""The LSTM's training settings: plain data, cheap to import (torch loads with the training
loop, `pipeline.model.training`, not with the code that only configures it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    window: int = 8  # chosen on validation by bench/window_length.py (see its rule)
    hidden: int = 56
    layers: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 4  # epochs without a lower validation loss before stopping
    gap_bound: float = 0.15  # train − validation accuracy (fraction) that stops training
    seed: int = 0
    balance: str = "loss"  # "loss" (class weights), "sampler" (weighted sampler), "none"
    device: str = "auto"  # "auto": CUDA when present, else CPU
    num_threads: int | None = None  # torch CPU threads for the run; None: leave as is
    grad_clip: float | None = 1.0  # max gradient norm
    train_eval_max: int = 20_000  # training windows scored in eval mode each epoch
    eval_batch: int = 4096
