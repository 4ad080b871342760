"""Engine functions: one training epoch and one evaluation pass. They do no I/O.

Collaborators come in as arguments: ``forward(batch) -> (logits, target)`` hides whether a batch
holds images or cached features; ``backward(loss)`` is Lightning Fabric's (precision, DDP) or
plain ``loss.backward``; ``reduce(tensor)`` sums across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    backward: Callable[[Tensor], None] = Tensor.backward,
    scheduler: Any = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Run one epoch; returns ``{"loss": mean loss, "steps": n}``.

    Raises:
        NonFiniteLossError: when a step's loss is NaN or infinite (nothing is updated by it).
    """
    total, steps = 0.0, 0
    for batch in loader:
        logits, target = forward(batch)
        loss = loss_fn(logits, target)
        value = float(loss.detach())
        if not torch.isfinite(torch.tensor(value)):
            raise NonFiniteLossError(
                f"the loss became {value} at step {steps + 1}; lower --lr or check the data"
            )
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


@torch.no_grad()
def evaluate(
    forward: Forward,
    loader: Iterable,
    num_classes: int,
    ignore_index: int,
    *,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Confusion matrix ``(C, C)`` over the loader (at the targets' resolution), summed once."""
    cm = None
    for batch in loader:
        logits, target = forward(batch)
        part = confusion_matrix(logits.argmax(1), target, num_classes, ignore_index)
        cm = part if cm is None else cm + part
    if cm is None:
        cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    return reduce(cm) if reduce is not None else cm
