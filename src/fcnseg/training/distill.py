"""Distilling a teacher's test-time augmentation into the model being trained.

A teacher (a checkpoint, usually the same recipe trained once already) segments every training
image with test-time augmentation (several scales, each mirrored; its probabilities averaged),
once, at the start of the run. The student then learns from the labels as before plus, with
weight ``distill_weight``, the KL divergence from the teacher's probabilities to its own, on every
pixel the teacher saw (void pixels too, not the crop's padding). The teacher's probabilities ride
through the same random scale, crop and flip as the mask
(:class:`fcnseg.data.transforms.SoftTarget`), so they stay aligned with the pixels they describe.

They are kept in RAM as uint8 (probability x 255): ``classes x H x W`` bytes per image, 1.8 MiB
for a 360x480 image of dataset1's 11 classes. The pass is repeated when a run resumes; on the
same machine and backend it gives the same probabilities.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fcnseg import zoo
from fcnseg.checkpoint import model_from_checkpoint
from fcnseg.data.info import DatasetInfo
from fcnseg.data.layout import Sample
from fcnseg.data.scan import Decoded, decode_pair
from fcnseg.errors import FcnsegError
from fcnseg.inference.core import predict_probabilities, prepare
from fcnseg.inference.inputs import to_tensor
from fcnseg.inference.resize import recorded_size
from fcnseg.progress import progress_bar

LEVELS = 255  # uint8 probabilities: p = value / LEVELS (then renormalised per pixel)


def quantize(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 levels (``round(p * 255)``)."""
    return np.rint(np.clip(prob, 0.0, 1.0) * LEVELS).astype(np.uint8)


def check_room(sizes: Counter, classes: int, memory: int | None = None) -> int:
    """The bytes the teacher's probabilities of images of ``sizes`` (``{(H, W): count}``) will
    take; FcnsegError when that is more than half of ``memory`` (default: this machine's RAM)."""
    need = classes * sum(h * w * n for (h, w), n in sizes.items())
    memory = memory if memory is not None else _physical_memory()
    if memory and need > memory // 2:
        raise FcnsegError(
            f"--distill-from: the teacher's probabilities of the training images would take "
            f"{need / 2**30:.1f} GiB of RAM ({classes} classes x their pixels, a byte each), more "
            f"than half of this machine's {memory / 2**30:.1f} GiB; train on smaller images "
            f"(resize the dataset) or without --distill-from"
        )
    return need


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this platform: no check
        return None


@torch.no_grad()
def teacher_probabilities(
    checkpoint: str,
    samples: list[Sample],
    info: DatasetInfo,
    decoded: list[Decoded] | None,
    *,
    scales: Sequence[float],
    flip: bool,
    device: torch.device | str,
    desc: str | None = "teacher pass",
) -> list[np.ndarray]:
    """The teacher's test-time-augmented probabilities of each sample, quantized (uint8
    ``(C, H, W)``), in the samples' order.

    Raises:
        FcnsegError: the teacher predicts other classes than the dataset's.
    """
    try:
        ckpt = zoo.load_checkpoint(checkpoint)  # a built-in model's name too
        model, teacher = model_from_checkpoint(ckpt, checkpoint)
    except FcnsegError as exc:
        raise FcnsegError(f"--distill-from {exc}") from exc
    if tuple(teacher.class_names) != tuple(info.class_names):
        raise FcnsegError(
            f"--distill-from {checkpoint}: its classes ({', '.join(teacher.class_names)}) are "
            f"not the dataset's ({', '.join(info.class_names)})"
        )
    model = prepare(model, torch.device(device))
    size = recorded_size(ckpt)  # as fcnseg predict --resize auto: the teacher's working scale
    out = []
    with progress_bar(total=len(samples), desc=desc, enabled=desc is not None) as bar:
        for i, sample in enumerate(samples):
            pair = decoded[i] if decoded is not None else None
            if pair is None:
                pair = decode_pair(sample, info)
            image = to_tensor(pair.image)  # the model's device: predict_probabilities moves it
            prob = predict_probabilities(model, image, scales=scales, flip=flip, size=size)
            out.append(quantize(prob))
            bar.update(1)
    return out


def distillation_loss(logits: Tensor, soft: Tensor) -> Tensor:
    """Mean KL divergence ``KL(teacher || student)`` per pixel, over the pixels the teacher saw.

    Args:
        logits: the student's raw scores ``(N, C, H, W)``.
        soft: the teacher's quantized probabilities ``(N, C, H, W)`` uint8 (:func:`quantize`);
            pixels whose levels sum to less than half of one (the crop's zero padding) are left
            out, the others renormalised to sum to 1.
    """
    levels = soft.to(device=logits.device, dtype=torch.float32)
    mass = levels.sum(1)
    seen = mass >= LEVELS / 2
    if not bool(seen.any()):
        return logits.sum() * 0
    p = levels / mass.clamp(min=1).unsqueeze(1)
    log_q = F.log_softmax(logits.float(), dim=1)
    kl = (torch.xlogy(p, p) - p * log_q).sum(1)
    return kl[seen].mean().to(logits.dtype)


def with_distillation(task_loss, weight: float):
    """``task_loss(logits, target) + weight * distillation_loss(logits, soft)``, as a loss of
    ``(logits, target, soft)``."""

    def loss(logits: Tensor, target: Tensor, soft: Tensor) -> Tensor:
        return task_loss(logits, target) + weight * distillation_loss(logits, soft)

    return loss
