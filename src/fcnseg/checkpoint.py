"""Self-describing checkpoints: architecture, constructor arguments, dataset description, state.

Written atomically (a temporary file in the same folder, then ``os.replace``) and read with
``torch.load(weights_only=True)``, so a truncated or foreign file is refused and no pickled code
ever runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.data.info import DatasetInfo
from fcnseg.errors import CheckpointError
from fcnseg.models import build_model

FORMAT = "fcnseg-checkpoint"
VERSION = 1


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, model: nn.Module, info: DatasetInfo, **extra: Any) -> None:
    """Save model arch + state + dataset description (+ training state in ``extra``)."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "arch": dict(model.arch),
        "dataset": info.to_dict(),
        "model": model.state_dict(),
        **extra,
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint; CheckpointError with a one-line reason otherwise.

    ``path`` may also be the name of a built-in model (``fcnseg models``), e.g. ``camvid_lite0``.
    """
    path = _builtin_or_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle with code, not a torch file...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable fcnseg checkpoint ({first[:200]})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an fcnseg checkpoint (no '{FORMAT}' marker)")
    for key in ("arch", "dataset", "model"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return _upcast(ckpt)


# Built-in models (fcnseg.zoo): a name that is not an existing path resolves to the shipped,
# sha256-checked file; shipped states are stored in fp16 and handed out in fp32.
def _builtin_or_path(path: str | Path) -> Path:
    from fcnseg import zoo

    return zoo.resolve(path)


def _upcast(ckpt: dict[str, Any]) -> dict[str, Any]:
    if ckpt.get("storage") == "fp16":
        ckpt["model"] = {
            k: v.float() if v.dtype == torch.float16 else v for k, v in ckpt["model"].items()
        }
    return ckpt


def model_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[nn.Module, DatasetInfo]:
    """Rebuild the model (no pretrained download) and load its state."""
    arch = dict(ckpt["arch"])
    name = arch.pop("name")
    try:
        model = build_model(name, weights_backbone=None, **arch)
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r} ({exc})") from exc
    return model, DatasetInfo.from_dict(ckpt["dataset"], str(path))
