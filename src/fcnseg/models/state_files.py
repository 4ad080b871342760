"""Reading weight files: a state dict of tensors, never unpickling code."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from fcnseg.errors import WeightsError, first_line


def load_state_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict from a file, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found (expected 'imagenet', 'none' or a path)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = first_line(exc)
        raise WeightsError(f"{path}: cannot be read as a PyTorch state dict ({first})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state
