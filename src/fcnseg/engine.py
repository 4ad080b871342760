"""Engine functions: one training epoch and one evaluation pass. They do no I/O.

Collaborators come in as arguments: ``forward(batch) -> (logits, target)`` hides whether a batch
holds images or cached features; ``backward(loss)`` is Lightning Fabric's (precision, DDP) or
plain ``loss.backward``; ``reduce(tensor)`` sums across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fcnseg.errors import FcnsegError
from fcnseg.metrics import confusion_matrix

Forward = Callable[[Any], tuple[Tensor, Tensor]]


class NonFiniteLossError(FcnsegError):
    """The loss became NaN or infinite."""


def train_one_epoch(
    forward: Forward,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., Tensor],
    *,
    backward: Callable[[Tensor], None] = Tensor.backward,
    scheduler: Any = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Run one epoch; returns ``{"loss": mean loss, "steps": n}``.

    ``forward(batch)`` gives ``(logits, target, *extra)`` and the loss is
    ``loss_fn(logits, target, *extra)`` (extra: e.g. a distillation teacher's probabilities).

    Raises:
        NonFiniteLossError: when a step's loss is NaN or infinite (nothing is updated by it).
    """
    total, steps = 0.0, 0
    for batch in loader:
        logits, target, *extra = forward(batch)
        loss = loss_fn(logits, target, *extra)
        value = float(loss.detach())
        if not torch.isfinite(torch.tensor(value)):
            raise NonFiniteLossError(_non_finite(value, steps + 1, logits, target))
        optimizer.zero_grad(set_to_none=True)
        backward(loss)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += value
        steps += 1
        if on_step is not None:
            on_step(steps, value)
    return {"loss": total / max(steps, 1), "steps": steps}


def _non_finite(value: float, step: int, logits: Tensor, target: Tensor) -> str:
    """Why the loss is not finite: masks without a labelled pixel (labels 0..C-1), else the lr."""
    is_mask = logits.ndim >= 2 and not target.is_floating_point()  # (N, C, ...) and class ids
    if is_mask and not bool(((target >= 0) & (target < logits.shape[1])).any()):
        return (
            f"the loss became {value} at step {step}: that batch's masks have no labelled pixels "
            "(every pixel is void); check the masks with fcnseg verify-data"
        )
    return f"the loss became {value} at step {step}; lower --lr or check the data"


@dataclass
class Evaluation:
    """What one pass over a split gives: the confusion matrix ``(C, C)`` (rows = truth) and,
    when a loss was given, the mean loss per pixel that is not ignored."""

    confusion: Tensor
    loss: float | None = None


@torch.no_grad()
def evaluate(
    forward: Forward,
    loader: Iterable,
    num_classes: int,
    ignore_index: int,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    reduce: Callable[[Tensor], Tensor] | None = None,
    on_batch: Callable[[Tensor], None] | None = None,
    on_pred: Callable[[Tensor], None] | None = None,
) -> Evaluation:
    """One pass over ``loader`` at the targets' resolution, summed over processes once.

    This is the one evaluation of the toolkit: per-epoch validation (images or cached features)
    and ``fcnseg evaluate`` (tiling, test-time augmentation) differ only in ``forward``.

    Args:
        forward: ``batch -> (scores, target)``; scores are logits or probabilities
            ``(N, C, H, W)``, or already labels ``(N, H, W)``.
        loader: batches; each process passes its own share, none twice.
        num_classes, ignore_index: as in the dataset description.
        loss_fn: also average this loss (needs scores, not labels), weighted by the batch's
            pixels that are not ignored.
        reduce: sums a tensor across processes (``fabric.all_reduce``); None for one process.
        on_batch: called with each batch's confusion matrix (e.g. per-image scores).
        on_pred: called with each batch's labels ``(N, H, W)`` (e.g. the pictures of a
            training run: drawn from this pass, not from a forward of their own).
    """
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum = torch.zeros(2, dtype=torch.float64)  # (sum of loss x pixels, pixels)
    for batch in loader:
        scores, target = forward(batch)
        pred = scores if scores.dim() == 3 else scores.argmax(1)
        part = confusion_matrix(pred, target, num_classes, ignore_index).cpu()
        cm += part
        if loss_fn is not None:
            pixels = float((target != ignore_index).sum())
            loss_sum += torch.tensor([float(loss_fn(scores.float(), target)) * pixels, pixels])
        if on_batch is not None:
            on_batch(part)
        if on_pred is not None:
            on_pred(pred)
    if reduce is not None:
        cm = reduce(cm)
        loss_sum = reduce(loss_sum)
    loss = float(loss_sum[0] / loss_sum[1]) if loss_fn is not None and loss_sum[1] > 0 else None
    return Evaluation(cm.cpu(), loss)
