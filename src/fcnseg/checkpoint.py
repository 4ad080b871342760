"""Self-describing checkpoints: architecture, constructor arguments, dataset description, state.

Written atomically (:func:`fcnseg.files.atomic_write`: a temporary file in the same folder,
flushed to disk, then ``os.replace``) and read with
``torch.load(weights_only=True)``, so a truncated or foreign file is refused and no pickled code
ever runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.data.info import DatasetInfo
from fcnseg.errors import CheckpointError
from fcnseg.files import atomic_write, load_tensors
from fcnseg.models import build_model

__all__ = ["atomic_write", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]

FORMAT = "fcnseg-checkpoint"
VERSION = 1


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
    ckpt = load_tensors(path, CheckpointError, "not a readable fcnseg checkpoint")
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
    name = arch.pop("name", None)
    try:
        model = build_model(name, weights_backbone=None, **arch)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r} ({exc})") from exc
    load_state(model, ckpt["model"], str(path))
    return model, DatasetInfo.from_dict(ckpt["dataset"], str(path))


def load_state(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """``model.load_state_dict(state)`` with a one-line CheckpointError naming a few culprits.

    PyTorch's own message lists every key (kilobytes for a mismatched backbone); this one counts
    them and names the first of each kind.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and getattr(state[k], "shape", None) != v.shape
    ]
    problems = [
        f"{len(items)} {what} (first: {items[0]})"
        for what, items in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("tensors of the wrong shape", wrong),
        )
        if items
    ]
    if problems:
        name = getattr(model, "arch", {}).get("name", type(model).__name__)
        raise CheckpointError(f"{source}: state does not fit {name}: {'; '.join(problems)}")
    model.load_state_dict(state)
