"""Checkpoints: a network's state dict as bytes, and back.

The store keeps the bytes and their SHA-256; turning them into tensors is the model's
business. Reading uses `weights_only=True`, so a checkpoint that carries anything but
tensors and plain containers is refused instead of unpickled: loading never runs code.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class CheckpointError(RuntimeError):
    """A checkpoint's bytes are not a plain state dict."""


def checkpoint_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The state dict, on the CPU, as `torch.save` writes it."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return buffer.getvalue()


def read_checkpoint(blob: bytes, model_id: int | None = None) -> dict[str, torch.Tensor]:
    """The state dict in `blob`, on the CPU; refuses any pickled object that is not plain."""
    import torch

    try:
        return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as err:  # weights_only refuses anything but tensors and plain containers
        raise CheckpointError(
            f"model {model_id}: checkpoint is not a plain state dict: {err}"
        ) from err
