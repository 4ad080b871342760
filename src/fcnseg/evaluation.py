"""Evaluating a checkpoint on a dataset split: the paper's metrics, per-class IoU, pictures.

The metrics come from :func:`fcnseg.engine.evaluate`, the same function that validates every
training epoch; here its ``forward`` predicts each image at its original resolution through
:func:`fcnseg.inference.predict_labels` (tiling, test-time augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint
from fcnseg.data import DatasetInfo, Sample, open_dataset, scan_split
from fcnseg.data.dataset import to_tv_tensors
from fcnseg.data.scan import Decoded
from fcnseg.data.transforms import eval_transform
from fcnseg.engine import evaluate
from fcnseg.errors import DataError
from fcnseg.files import atomic_write
from fcnseg.inference import pick_device, predict_labels
from fcnseg.metrics import metrics_from_confusion

SUMMARY_KEYS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "num_images", "tta")


@dataclass
class EvalResult:
    """Metrics of a split, its confusion matrix ``(C, C)`` and every image's own score."""

    metrics: dict[str, Any]
    confusion: np.ndarray
    info: DatasetInfo
    per_image: list[tuple[float, Sample, Decoded, np.ndarray]] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The JSON-able metrics (``fcnseg evaluate --json``)."""
        return {k: self.metrics[k] for k in SUMMARY_KEYS}


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    device: str = "auto",
    scales: tuple[float, ...] = (1.0,),
    flip: bool = False,
    progress: bool = True,
    backend: str = "torch",
) -> EvalResult:
    """Metrics of a checkpoint on a split at the images' original resolution.

    ``scales``/``flip``: test-time augmentation (see :func:`fcnseg.inference.class_scores`).
    ``backend``: ``torch``, ``onnxruntime`` or ``auto`` (see :func:`fcnseg.backends.load_backend`).
    """
    from fcnseg import zoo
    from fcnseg.backends import load_backend, resolve_backend

    dev = pick_device(device)
    resolve_backend(backend, "fp32", dev)  # a bad name fails before the checkpoint is read
    ckpt = load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt, checkpoint)
    layout = open_dataset(data)
    if layout.info.class_names != info.class_names:
        raise DataError(
            f"{data}: classes {list(layout.info.class_names)} differ from the checkpoint's "
            f"{list(info.class_names)}"
        )
    scan = scan_split(
        layout.split(split), layout.info, progress=f"reading {split}" if progress else None
    )
    model = load_backend(model, backend, device=dev, checkpoint=zoo.resolve(checkpoint))
    transform = eval_transform()
    pairs = list(zip(scan.samples, scan.decoded, strict=True))
    per_image: list = []

    def forward(item):
        sample, pair = item
        image, mask = transform(*to_tv_tensors(pair))
        labels = torch.from_numpy(predict_labels(model, image, scales=scales, flip=flip))
        per_image.append([None, sample, pair, labels.numpy()])
        return labels[None], mask.as_subclass(torch.Tensor)[None]

    def score(cm: torch.Tensor) -> None:
        per_image[-1][0] = metrics_from_confusion(cm)["mean_iu"]

    batches = tqdm(pairs, desc="evaluating", disable=not progress, leave=False)
    result = evaluate(forward, batches, info.num_classes, info.ignore_index, on_batch=score)
    metrics = metrics_from_confusion(result.confusion, info.class_names)
    metrics["num_images"] = len(pairs)
    metrics["tta"] = {"scales": list(scales), "flip": flip}
    return EvalResult(metrics, result.confusion.numpy(), info, [tuple(r) for r in per_image])


def format_table(metrics: dict) -> str:
    """The four metrics, then per-class IoU and accuracy, as aligned text."""
    lines = [
        f"{'pixel accuracy':<24}{metrics['pixel_acc']:.4f}",
        f"{'mean accuracy':<24}{metrics['mean_acc']:.4f}",
        f"{'mean IU':<24}{metrics['mean_iu']:.4f}",
        f"{'frequency-weighted IU':<24}{metrics['fw_iu']:.4f}",
        "",
        f"{'class':<16}{'IoU':>8}{'accuracy':>10}",
    ]
    for name, iu in metrics["per_class_iu"].items():
        acc = metrics["per_class_acc"][name]
        lines.append(f"{name:<16}{_fmt(iu):>8}{_fmt(acc):>10}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return f"{v:.4f}" if v is not None else "-"


def save_report(result: EvalResult, out: str | Path, worst: int = 4) -> Path:
    """``confusion_matrix.png``, ``per_class_iou.png`` and ``worst_images.png`` in ``out``."""
    from fcnseg.viz import confusion_plot, per_class_bar, triplet_panel

    out = Path(out)
    confusion_plot(result.confusion, result.info, out / "confusion_matrix.png")
    per_class_bar(result.metrics["per_class_iu"], result.info, out / "per_class_iou.png")
    ranked = sorted(result.per_image, key=lambda r: np.nan_to_num(r[0], nan=1.0))[:worst]
    if ranked:
        rows = [(pair.image, pair.mask, pred) for _, _, pair, pred in ranked]
        titles = [f"{s.image.name}: mean IU {iu:.3f}" for iu, s, _, _ in ranked]
        triplet_panel(
            rows, result.info, out / "worst_images.png", title="worst images", row_titles=titles
        )
    return out


def save_json(result: EvalResult, path: str | Path) -> None:
    import json

    # NaN (a metric of no labelled pixel) is not JSON: it is written as null.
    text = json.dumps(_nan_to_none(result.summary()), indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def _nan_to_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (also nested in dicts and lists) as None."""
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
