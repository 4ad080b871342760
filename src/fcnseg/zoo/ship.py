"""Turn a trained checkpoint into a built-in model: a compact fp16 file plus its manifest.

The shipped file is re-evaluated on the dataset's test split (the file as shipped, fp16 and all),
so the manifest's metrics are those a user gets. Shipping a name again replaces that model: the
repository holds one file per name, never a history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from fcnseg.checkpoint import FORMAT, VERSION, atomic_write, load_checkpoint, model_from_checkpoint
from fcnseg.errors import DataError, FcnsegError
from fcnseg.version import __version__
from fcnseg.zoo import NAME_PATTERN, BuiltinModel, _root, sha256_file


def evaluate_on_test(
    checkpoint: str | Path,
    data: str | Path,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of a checkpoint (or built-in name) on ``data``'s test split.

    The one place the zoo evaluates a model (shipping and the shipped-model test both call it),
    so it is repointed in one line when the evaluation moves into the library.
    """
    from fcnseg.evaluation import evaluate_checkpoint

    # backend torch: the metrics of the model itself, and no ONNX file cached in the zoo folder.
    result = evaluate_checkpoint(checkpoint, data, "test", device=device, backend="torch",
                                 tta_scales=tuple(scales), tta_flip=flip)  # fmt: skip
    return result.summary()


def compact_state(ckpt: dict[str, Any], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model state with its floating-point parameters in fp16.

    Buffers (BatchNorm running statistics) stay fp32: they are few, and a running variance
    below fp16's normal range would lose its precision.
    """
    model, _ = model_from_checkpoint(ckpt, source)
    params = {name for name, _ in model.named_parameters()}
    return {
        k: v.half() if k in params and v.is_floating_point() else v.clone()
        for k, v in ckpt["model"].items()
    }


def ship_model(
    checkpoint: str | Path,
    name: str,
    *,
    data: str | Path,
    recipe: str,
    command: str | None = None,
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool = False,
    device: str = "auto",
    root: str | Path | None = None,
    trained_on: str | None = None,
    test_in_training: bool = False,
    recipe_metrics: Sequence[str | Path] = (),
) -> BuiltinModel:
    """Write ``NAME.pt`` (fp16 parameters) and ``NAME.json`` into the zoo folder, replacing any
    model of that name, after evaluating the compact file on ``data``'s test split.

    Args:
        checkpoint: a checkpoint written by ``fcnseg train``.
        name: the built-in name (lower case, digits, underscores), e.g. ``camvid_lite2``.
        data: the dataset whose test split is evaluated (dataset1 for the CamVid models).
        recipe: the recipe(s) that trained it, e.g. ``configs/dataset1_lite0_finetune.yaml``.
        command: the training command; default: the one recorded in the checkpoint.
        tta_scales: also record metrics with test-time augmentation at these scales.
        tta_flip: with ``tta_scales``, also average over mirrored images.
        device: where to evaluate.
        root: the zoo folder (default: the package's).
        trained_on: what it was trained on, in words (e.g. ``dataset1 train + test, 468
            images``), recorded in the manifest.
        test_in_training: the test split was part of its training data. Its re-evaluation there
            is still recorded (it checks the file) but is not a measurement of accuracy; the
            numbers shown for it are then ``recipe_metrics``'.
        recipe_metrics: with ``test_in_training``: ``fcnseg evaluate --json`` files of the same
            recipe trained without the test split (single scale, then optionally with TTA).
    """
    if not NAME_PATTERN.match(name):
        raise FcnsegError(f"--name {name!r}: use lower-case letters, digits and underscores")
    if not Path(data).is_dir():
        raise DataError(f"{data}: dataset folder not found")
    root = _root(root)
    if not root.is_dir():
        raise FcnsegError(f"{root}: zoo folder not found")
    if test_in_training and not recipe_metrics:
        raise FcnsegError(
            "--test-in-training needs --recipe-metrics: the evaluate --json file(s) of the same "
            "recipe trained without the test split (the numbers shown for the model)"
        )
    if len(recipe_metrics) > 2 or (recipe_metrics and not test_in_training):
        raise FcnsegError("--recipe-metrics takes one or two files, with --test-in-training")
    how: dict[str, Any] = {"recipe": recipe, "trained_on": trained_on}
    how["test_in_training"] = test_in_training
    if test_in_training:
        how["recipe_metrics"] = _recipe_metrics(recipe_metrics)
    ckpt = load_checkpoint(checkpoint)
    run_info = dict(ckpt.get("run_info") or {})
    shipped = {
        "format": FORMAT,
        "version": VERSION,
        "arch": ckpt["arch"],
        "dataset": ckpt["dataset"],
        "model": compact_state(ckpt, str(checkpoint)),
        "storage": "fp16",
        "run_info": run_info,
    }
    if ckpt.get("working_size") is not None:  # the scale the model runs at (fcnseg.inference)
        shipped["working_size"] = ckpt["working_size"]
    tmp = root / f".{name}.pt.shipping"
    try:
        torch.save(shipped, tmp)
        metrics = evaluate_on_test(tmp, data, device=device)
        metrics_tta = None
        if tta_scales:
            metrics_tta = evaluate_on_test(
                tmp, data, scales=tta_scales, flip=tta_flip, device=device
            )
        manifest = _manifest(name, ckpt, tmp, how, command, data, metrics, metrics_tta)
        os.replace(tmp, root / f"{name}.pt")
    finally:
        tmp.unlink(missing_ok=True)
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(root / f"{name}.json", lambda t: Path(t).write_text(text))
    return BuiltinModel(name, root / f"{name}.pt", manifest)


MAX_METRICS_JSON = 1 << 20  # evaluate --json writes a few kilobytes


def _recipe_metrics(paths: Sequence[str | Path]) -> dict[str, Any]:
    """``{"metrics": ..., "metrics_tta": ...}`` read from ``fcnseg evaluate --json`` files."""
    read = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read(MAX_METRICS_JSON + 1)[:MAX_METRICS_JSON])
        except OSError as exc:
            raise FcnsegError(
                f"{path}: cannot read the --recipe-metrics file ({exc.strerror})"
            ) from exc
        except ValueError as exc:
            raise FcnsegError(f"{path}: not an fcnseg evaluate --json file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("mean_iu"), float):
            raise FcnsegError(f"{path}: not an fcnseg evaluate --json file (no mean_iu)")
        read.append(data)
    return {"metrics": read[0], "metrics_tta": read[1] if len(read) > 1 else None}


def _manifest(
    name: str,
    ckpt: dict[str, Any],
    file: Path,
    how: dict[str, Any],
    command: str | None,
    data: str | Path,
    metrics: dict[str, Any],
    metrics_tta: dict[str, Any] | None,
) -> dict[str, Any]:
    run_info = ckpt.get("run_info") or {}
    config = {k: v for k, v in (ckpt.get("config") or {}).items() if k != "run_info"}
    return {
        "name": name,
        "file": f"{name}.pt",
        "sha256": sha256_file(file),
        "size_bytes": file.stat().st_size,
        "storage": "fp16 parameters, fp32 buffers (loading upcasts to fp32)",
        "arch": ckpt["arch"],
        "working_size": ckpt.get("working_size"),
        "classes": list(ckpt["dataset"]["class_names"]),
        **how,
        "command": command or run_info.get("command"),
        "git_hash": run_info.get("git_hash"),
        "training": {
            "epoch": ckpt.get("epoch"),
            "best_val_mean_iu": ckpt.get("best_mean_iu"),
            "torch": run_info.get("torch"),
            "config": config,
        },
        "evaluated_on": {"data": Path(data).name, "split": "test"},
        "metrics": metrics,
        "metrics_tta": metrics_tta,
        "shipped": {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "fcnseg_version": __version__,
            "torch": str(torch.__version__),
        },
    }
