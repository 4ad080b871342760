"""Transfer-learning modes and the optimizer's parameter groups.

The modes themselves live on the model (:meth:`fcnseg.models.FCN.freeze`), which keeps frozen
parts in eval mode by construction; this module names them for the CLI and splits the trainable
parameters into the head and the pretrained parts (each with its own learning rate).
"""

from __future__ import annotations

from torch import nn

from fcnseg.models.fcn import FREEZE_MODES

__all__ = ["FREEZE_MODES", "apply_freeze", "param_groups"]


def apply_freeze(model: nn.Module, mode: str, norm_eval: bool = False) -> None:
    """Freeze ``mode`` on ``model`` (see :meth:`fcnseg.models.FCN.freeze`)."""
    model.freeze(mode, norm_eval=norm_eval)


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float) -> list[dict]:
    """Trainable parameters only: the head at ``lr``, unfrozen pretrained parts at ``lr * mult``."""
    pretrained = {id(p) for m in (model.backbone, model.neck) for p in m.parameters()}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in pretrained]
    body = [p for p in model.parameters() if p.requires_grad and id(p) in pretrained]
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"})
    return groups
