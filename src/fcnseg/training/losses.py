"""Losses on raw logits ``(N, C, H, W)`` against targets ``(N, H, W)``, the ignore label excluded."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "focal", "dice", "ce+dice", "seed", "ohem", "lovasz", "ce+lovasz")
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


def ohem_loss(
    logits: Tensor,
    target: Tensor,
    ignore_index: int,
    weight: Tensor | None,
    keep: float = 0.25,
    min_kept: int = 4096,
) -> Tensor:
    """Online hard example mining: cross-entropy averaged over the hardest pixels only.

    Keeps the ``max(keep * valid pixels, min_kept)`` pixels of highest loss (as in the common
    "OhemCrossEntropy" of semantic segmentation codebases, by count rather than a probability
    threshold): the easy pixels of sky and road stop dominating, thin classes' borders count.
    """
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="none")
    ce = ce[target != ignore_index]
    if ce.numel() == 0:
        return logits.sum() * 0
    k = min(ce.numel(), max(int(keep * ce.numel()), min_kept))
    return ce.topk(k, sorted=False).values.mean()


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman et al.,
    Alg. 1): ``gt_sorted`` ``(..., P)`` is the 0/1 truth ordered by decreasing error along its
    last dimension (one row per class)."""
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_softmax(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Lovász-softmax loss (Berman, Rannen Triki & Blaschko, CVPR 2018): a convex surrogate of
    1 - IoU per class, averaged over the classes present in the batch's truth.

    Computed over all valid pixels of the batch together (the paper's ``per_image=False``), so it
    optimises the dataset-level mean IU that is reported, including thin classes. The classes'
    errors are sorted in one call (rows of a ``(classes, pixels)`` tensor), not one per class:
    the sorts are most of the loss's time.
    """
    c = logits.shape[1]
    prob = F.softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, c)
    labels = target.reshape(-1)
    valid = labels != ignore_index
    prob, labels = prob[valid], labels[valid]
    if labels.numel() == 0:
        return logits.sum() * 0
    present = torch.bincount(labels, minlength=c).nonzero().flatten()  # no sort, unlike unique
    fg = (labels[None, :] == present[:, None]).to(prob.dtype)  # (classes present, pixels)
    errors = (fg - prob[:, present].t()).abs()
    errors_sorted, order = errors.sort(dim=1, descending=True)
    losses = (errors_sorted * lovasz_grad(fg.gather(1, order))).sum(1)
    return losses.mean().to(logits.dtype)


def build_loss(name: str, ignore_index: int, class_weights: Tensor | None = None) -> LossFn:
    """A loss ``fn(logits, target) -> scalar`` by name (one of :data:`LOSSES`); ``a+b`` is the
    sum of losses ``a`` and ``b``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    w, ig = class_weights, ignore_index
    single: dict[str, LossFn] = {
        "ce": lambda x, y: F.cross_entropy(x, y, weight=_on(w, x), ignore_index=ig),
        "focal": lambda x, y: focal_loss(x, y, ig, _on(w, x)),
        "dice": lambda x, y: dice_loss(x, y, ig),
        "seed": lambda x, y: seed_loss(x, y, ig, _on(w, x)),
        "ohem": lambda x, y: ohem_loss(x, y, ig, _on(w, x)),
        "lovasz": lambda x, y: lovasz_softmax(x, y, ig),
    }
    parts = [single[part] for part in name.split("+")]
    if len(parts) == 1:
        return parts[0]
    return lambda x, y: sum(part(x, y) for part in parts)


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
