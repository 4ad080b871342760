"""Self-describing checkpoints: architecture, constructor arguments, dataset description, state.

Written atomically (:func:`fcnseg.files.atomic_write`: a temporary file in the same folder,
flushed to disk, then ``os.replace``) and read with
``torch.load(weights_only=True)``, so a truncated or foreign file is refused and no pickled code
ever runs.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.data.info import MAX_CLASSES, DatasetInfo
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

    A file path only: a built-in model's name is resolved above this layer
    (:func:`fcnseg.zoo.load_checkpoint`, which the API and the commands call). The file is read
    once: the state is loaded from the same bytes whose SHA-256 is returned as ``ckpt["sha256"]``,
    so an export cached under that digest (:mod:`fcnseg.inference.export_cache`) is made from what
    the digest names, even if the file is replaced meanwhile.
    """
    if not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise CheckpointError(
            f"checkpoint must be a file path or a built-in model name, got {path!r}"
        )
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    # Loaded from the bytes that are hashed below: the digest names exactly what was read.
    ckpt = load_tensors(io.BytesIO(data), CheckpointError, "not a readable fcnseg checkpoint", path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an fcnseg checkpoint (no '{FORMAT}' marker)")
    for key in ("arch", "dataset", "model"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    _check_record(ckpt, path)
    ckpt["sha256"] = hashlib.sha256(data).hexdigest()
    return _upcast(ckpt)


# A crafted record could ask for a model of a billion classes or channels: the sizes a checkpoint
# may name are bounded before anything is built.
MAX_WIDTH = 1 << 16


def _check_record(ckpt: dict[str, Any], path: Path) -> None:
    """CheckpointError unless the record's parts have the types and sizes fcnseg writes."""
    arch, state = ckpt["arch"], ckpt["model"]
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise CheckpointError(
            f"{path}: 'arch' must be a mapping with a model 'name', got {arch!r:.80}"
        )
    for key, value in arch.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool | None):
            raise CheckpointError(
                f"{path}: 'arch' holds {key!r}: {value!r:.80}; expected plain values"
            )
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_WIDTH:
            raise CheckpointError(f"{path}: 'arch' option {key!r} = {value} is out of range")
    classes = arch.get("num_classes")
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES:
        raise CheckpointError(
            f"{path}: 'arch' num_classes must be an integer in 1..{MAX_CLASSES}, got {classes!r}"
        )
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: 'model' must map tensor names to tensors")


# Shipped states are stored in fp16 and handed out in fp32.
def _upcast(ckpt: dict[str, Any]) -> dict[str, Any]:
    if ckpt.get("storage") == "fp16":
        ckpt["model"] = {
            k: v.float() if v.dtype == torch.float16 else v for k, v in ckpt["model"].items()
        }
    return ckpt


def model_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[nn.Module, DatasetInfo]:
    """Rebuild the model (no pretrained download) and load its state.

    The model remembers where it came from, for the export caches: ``checkpoint_sha256`` (the
    digest of the bytes its state was read from, None for a dict not from
    :func:`load_checkpoint`) and ``training_data`` (the dataset root its run recorded, or None),
    the default calibration data of ``--precision int8``.
    """
    arch = dict(ckpt["arch"])
    name = arch.pop("name", None)
    info = DatasetInfo.from_dict(ckpt["dataset"], str(path))
    if info.num_classes != arch.get("num_classes"):
        # Labels would name the wrong classes (or none): the description must fit the outputs.
        raise CheckpointError(
            f"{path}: the dataset description names {info.num_classes} classes but the model "
            f"scores {arch.get('num_classes')}"
        )
    try:
        model = build_model(name, weights_backbone=None, **arch)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r} ({exc})") from exc
    load_state(model, ckpt["model"], str(path))
    model.checkpoint_sha256 = ckpt.get("sha256")
    recorded = (ckpt.get("run_info") or {}).get("dataset") or {}
    model.training_data = recorded.get("root") if isinstance(recorded, dict) else None
    return model, info


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
