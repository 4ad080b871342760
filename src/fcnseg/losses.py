"""Losses on raw logits ``(N, C, H, W)`` against targets ``(N, H, W)``, the ignore label excluded."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "focal", "dice", "ce+dice", "seed")
LossFn = Callable[[Tensor, Tensor], Tensor]


def focal_loss(
    logits: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None, gamma: float = 2.0
) -> Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_t) ** gamma``."""
    logp = F.log_softmax(logits, dim=1)
    ce = F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    pt = logp.gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1).exp()
    loss = ((1 - pt) ** gamma * ce)[valid]
    if weight is None:
        return loss.mean() if loss.numel() else logits.sum() * 0
    denom = weight[target[valid]].sum()
    return loss.sum() / denom.clamp(min=1e-12)


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int, eps: float = 1.0) -> Tensor:
    """Soft Dice over the classes present in the batch's truth or prediction mass."""
    c = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    prob = F.softmax(logits, dim=1) * valid
    onehot = F.one_hot(target.clamp(0, c - 1), c).permute(0, 3, 1, 2) * valid
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if bool(present.any()) else logits.sum() * 0


def seed_loss(logits: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None) -> Tensor:
    """The classic recipe's one-vs-all log loss: a sigmoid per class against the one-hot truth.

    Computed with ``binary_cross_entropy_with_logits`` (log-sum-exp form), so it never takes the
    log of zero; kept for comparison with the softmax losses.
    """
    c = logits.shape[1]
    valid = target != ignore_index
    onehot = F.one_hot(target.clamp(0, c - 1), c).permute(0, 3, 1, 2).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1)
    if weight is not None:
        loss = loss * weight[target.clamp(0, c - 1)]
    return loss[valid].mean() if bool(valid.any()) else logits.sum() * 0


def build_loss(name: str, ignore_index: int, class_weights: Tensor | None = None) -> LossFn:
    """A loss ``fn(logits, target) -> scalar`` by name (one of :data:`LOSSES`)."""
    w = class_weights
    if name == "ce":
        return lambda x, y: F.cross_entropy(x, y, weight=_on(w, x), ignore_index=ignore_index)
    if name == "focal":
        return lambda x, y: focal_loss(x, y, ignore_index, _on(w, x))
    if name == "dice":
        return lambda x, y: dice_loss(x, y, ignore_index)
    if name == "ce+dice":
        return lambda x, y: (
            F.cross_entropy(x, y, weight=_on(w, x), ignore_index=ignore_index)
            + dice_loss(x, y, ignore_index)
        )
    if name == "seed":
        return lambda x, y: seed_loss(x, y, ignore_index, _on(w, x))
    raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")


def _on(w: Tensor | None, like: Tensor) -> Tensor | None:
    return None if w is None else w.to(device=like.device, dtype=like.dtype)


def parse_class_weights(spec: str, num_classes: int) -> str | list[float] | None:
    """``none`` -> None, ``median-freq`` -> that string, ``w1,w2,...`` -> floats (one per class)."""
    if spec in ("none", "", None):
        return None
    if spec == "median-freq":
        return spec
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        values = []
    if len(values) != num_classes or any(v < 0 for v in values):
        raise ValueError(
            f"--class-weights must be none, median-freq or {num_classes} non-negative numbers "
            f"separated by commas, got {spec!r}"
        )
    return values
