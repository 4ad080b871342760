"""An exponential moving average (EMA) of a model's weights, for validation and the checkpoints.

Fine-tuning on a few hundred images moves the weights noisily from step to step; their running
average generalises more smoothly (Polyak averaging; timm's ``ModelEma``, mmsegmentation's
``EMAHook``). The average starts as a copy of the model; its decay warms up as
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so a short run is not dominated by its
starting weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """EMA of every floating-point tensor of ``model``'s state (parameters and BatchNorm
    statistics); integer buffers (BatchNorm's step counts) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.steps = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses (warm-up, then ``decay``)."""
        n = self.steps + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimiser step)."""
        weight = 1 - self.current_decay()
        own, new = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in own.items() if v.is_floating_point()]
        torch._foreach_lerp_([own[k] for k in floats], [new[k].detach() for k in floats], weight)
        for k, v in own.items():
            if not v.is_floating_point():
                v.copy_(new[k])
        self.steps += 1

    def load(self, state: dict[str, torch.Tensor], steps: int) -> None:
        """Restore an average saved as ``module.state_dict()`` after ``steps`` updates (resume)."""
        self.module.load_state_dict(state)
        self.steps = int(steps)
