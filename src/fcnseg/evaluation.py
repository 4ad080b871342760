"""Evaluating a checkpoint on a dataset split: the paper's metrics, per-class IoU, pictures.

The metrics come from :func:`fcnseg.engine.evaluate`, the same function that validates every
training epoch; here its ``forward`` takes each image's labels at its original resolution from
:func:`fcnseg.inference.predict_many` (working scale, batches, tiling, test-time augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fcnseg.checkpoint import model_from_checkpoint
from fcnseg.data import DatasetInfo, Sample, open_dataset, scan_split
from fcnseg.data.dataset import to_tv_tensors
from fcnseg.data.scan import Decoded, decode_pair
from fcnseg.data.transforms import eval_transform
from fcnseg.engine import evaluate
from fcnseg.errors import DataError, FcnsegError
from fcnseg.files import atomic_write
from fcnseg.inference import make_config, predict_many, recorded_size
from fcnseg.inference.resize import size_for
from fcnseg.metrics import metrics_from_confusion

SUMMARY_KEYS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "num_images", "tta")


@dataclass
class EvalResult:
    """Metrics of a split, its confusion matrix ``(C, C)``, every image's own score
    ``(mean IU, sample)`` in the split's order, and the ``worst`` lowest-scored images with their
    pixels and labels ``(mean IU, sample, pair, labels)``, lowest first (what
    :func:`save_report` draws)."""

    metrics: dict[str, Any]
    confusion: np.ndarray
    info: DatasetInfo
    per_image: list[tuple[float, Sample]] = field(repr=False)
    worst: list[tuple[float, Sample, Decoded, np.ndarray]] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """The JSON-able metrics (``fcnseg evaluate --json``)."""
        return {k: self.metrics[k] for k in SUMMARY_KEYS}


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    progress: bool = True,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    resize: str | int | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool | None = None,
    batch_size: int | None = None,
    calibration: str | Path | None = None,
    worst: int = 4,
) -> EvalResult:
    """Metrics of a checkpoint on a split, its labels at the images' original resolution.

    The options are those of :class:`fcnseg.inference.InferenceConfig` (``None``: its default),
    as for :func:`fcnseg.load`: each image runs at the model's working scale (``resize``), with
    tiles and test-time augmentation (see :func:`fcnseg.inference.predict_many`). ``calibration``
    (``precision="int8"``): see :func:`fcnseg.inference.backends.load_backend`. The split is
    read twice, once to check every pair before any work and once while it is scored, so memory
    holds a batch of images and the ``worst`` lowest-scored ones, whatever the split's size.
    """
    from fcnseg import zoo
    from fcnseg.inference.backends import load_backend

    given = {"device": device, "precision": precision, "backend": backend, "resize": resize,
             "tile": tile, "overlap": overlap, "tta_scales": tta_scales, "tta_flip": tta_flip,
             "batch_size": batch_size, "calibration": calibration}  # fmt: skip
    config = make_config(None, given)
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise FcnsegError(f"worst must be a whole number >= 0, got {worst!r}")
    dev = config.runtime()  # bad options fail before the checkpoint is read
    ckpt = zoo.load_checkpoint(checkpoint)
    model, info = model_from_checkpoint(ckpt, checkpoint)
    layout = open_dataset(data)
    if layout.info.class_names != info.class_names:
        raise DataError(
            f"{data}: classes {list(layout.info.class_names)} differ from the checkpoint's "
            f"{list(info.class_names)}"
        )
    _check_split(layout, data, split)
    scan = scan_split(layout.split(split), layout.info, keep=False,
                      progress=f"checking {split}" if progress else None)  # fmt: skip
    model = load_backend(model, config.backend, precision=config.precision, device=dev,
                         checkpoint=zoo.resolve(checkpoint),
                         calibration=config.calibration)  # fmt: skip
    size = size_for(config.resize, recorded_size(ckpt), str(checkpoint))
    scored = _run(model, scan.samples, layout.info, config, size, progress, worst)
    metrics = metrics_from_confusion(scored.confusion, info.class_names)
    metrics["num_images"] = len(scan.samples)
    metrics["tta"] = {"scales": list(config.tta_scales), "flip": config.tta_flip}
    metrics["working_size"] = size
    return EvalResult(metrics, scored.confusion.numpy(), info, scored.rows, scored.worst)


@dataclass
class _Scored:
    confusion: torch.Tensor
    rows: list[tuple[float, Sample]]
    worst: list[tuple[float, Sample, Decoded, np.ndarray]]


def _run(model, samples: list[Sample], data_info: DatasetInfo, config, size: int | None,
         progress: bool, worst: int) -> _Scored:  # fmt: skip
    """The labels of every pair through :func:`predict_many` (batches, tiles, working scale),
    scored by :func:`fcnseg.engine.evaluate` one image at a time; each pair is decoded as
    :func:`predict_many` asks for it and dropped once scored, unless it is among the ``worst``."""
    transform = eval_transform()
    pending: dict[int, Decoded] = {}  # decoded, not yet scored: at most a batch

    def images():
        for i, sample in enumerate(samples):
            pending[i] = pair = decode_pair(sample, data_info)
            yield i, transform(*to_tv_tensors(pair))[0]

    predictions = predict_many(model, images(), batch_size=config.batch_size,
                               precision=config.precision, size=size,
                               **config.call_options())  # fmt: skip
    rows: list[tuple[float, Sample]] = []
    lowest: list[tuple[float, int, Decoded, np.ndarray]] = []
    current: list = []

    def forward(item):
        i, labels = item
        current[:] = [i, pending.pop(i), labels]
        return torch.from_numpy(labels)[None], torch.from_numpy(current[1].mask)[None]

    def score(cm: torch.Tensor) -> None:
        i, pair, labels = current
        iu = metrics_from_confusion(cm)["mean_iu"]
        rows.append((iu, samples[i]))
        if worst:  # kept sorted by score (an image with no labelled pixel last), then order
            lowest.append((iu, i, pair, labels))
            lowest.sort(key=lambda r: (np.nan_to_num(r[0], nan=1.0), r[1]))
            del lowest[worst:]

    batches = tqdm(predictions, total=len(samples), desc="evaluating", disable=not progress,
                   leave=False)  # fmt: skip
    result = evaluate(forward, batches, data_info.num_classes, data_info.ignore_index,
                      on_batch=score)  # fmt: skip
    kept = [(iu, samples[i], pair, labels) for iu, i, pair, labels in lowest]
    return _Scored(result.confusion, rows, kept)


def _check_split(layout, data: str | Path, split: str) -> None:
    """DataError for a split the dataset lacks, suggesting one it has (``--split val``)."""
    if split in layout.splits:
        return
    found = list(layout.splits)
    hint = next((s for s in ("val", "test") if s in found), found[0] if found else None)
    suggestion = f"; evaluate another with --split {hint}" if hint else ""
    raise DataError(f"{data}: no '{split}' split (found: {', '.join(found) or 'none'}){suggestion}")


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


REPORT_FILES = ("confusion_matrix.png", "per_class_iou.png", "worst_images.png")


def save_report(result: EvalResult, out: str | Path, worst: int = 4) -> Path:
    """``confusion_matrix.png``, ``per_class_iou.png`` and ``worst_images.png`` in ``out``.

    The worst-images panel shows up to ``worst`` of the images that :func:`evaluate_checkpoint`
    kept (its own ``worst``), lowest mean IU first.
    """
    from fcnseg.viz import confusion_plot, per_class_bar, triplet_panel

    out = Path(out)
    confusion, per_class, worst_images = (out / name for name in REPORT_FILES)
    confusion_plot(result.confusion, result.info, confusion)
    per_class_bar(result.metrics["per_class_iu"], result.info, per_class)
    ranked = result.worst[:worst]
    if ranked:
        rows = [(pair.image, pair.mask, pred) for _, _, pair, pred in ranked]
        titles = [f"{s.image.name}: mean IU {iu:.3f}" for iu, s, _, _ in ranked]
        triplet_panel(rows, result.info, worst_images, title="worst images", row_titles=titles)
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
