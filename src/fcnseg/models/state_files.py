"""Reading weight files: a state dict of tensors, never unpickling code."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from fcnseg.errors import WeightsError
from fcnseg.files import load_tensors


def load_state_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict from a file, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found (expected 'imagenet', 'none' or a path)"
        )
    state = load_tensors(path, WeightsError, "cannot be read as a PyTorch state dict")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state
