"""The direction classifier: one LSTM layer over the window, a linear head on its last state.

Default shape: 50 features → 56 hidden units, one layer, dropout 0.2 before the head:
4·56·(50+56) + 8·56 + 56 + 1 = 24,249 parameters (the seed's model had 24,962). One wide
layer rather than two narrow ones (2 × 36 units: 23,365): the recurrence is sequential over
the window, so each extra layer adds another L dependent steps per batch, and on CPU the
step count, not the FLOPs, bounds the speed. 56 is a multiple of 8 (gate rows 224) for
vectorised kernels. `hidden` / `layers` stay configurable for a measured comparison.
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    """x [B, L, F] → logits [B] of P(up)."""

    def __init__(
        self, n_features: int = 50, hidden: int = 56, layers: int = 1, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,  # PyTorch drops only between layers
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(self.dropout(h[-1])).squeeze(-1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lstm_flops_per_sample(n_features: int, hidden: int, layers: int, window: int) -> dict[str, int]:
    """Matmul FLOPs of one window (2 FLOPs per multiply-add; gate nonlinearities ignored).

    Per step and layer the gates cost 4h·(in + h) MACs (in = F for the first layer, h
    after); the head h MACs once. Training ≈ 3 × forward (backward ≈ 2 × forward).
    """
    macs = sum(4 * hidden * ((n_features if k == 0 else hidden) + hidden) for k in range(layers))
    forward = 2 * (window * macs + hidden)
    return {"forward": forward, "train": 3 * forward}
