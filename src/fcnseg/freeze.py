"""Transfer-learning modes: which parts of a model are frozen.

``features`` freezes the backbone's trunk (VGG16's convolutions: the classic "train the upsampling
part"); ``backbone`` also freezes the pretrained layers on top of it (VGG16's fc6/fc7, the paper's
"FCN-32s-fixed"); ``none`` fine-tunes everything. Frozen means three things: no gradients
(``requires_grad=False``), eval mode (dropout off, norm statistics fixed) even after
``model.train()``, and no place in the optimizer.
"""

from __future__ import annotations

from torch import nn

FREEZE_MODES = ("none", "features", "backbone")


def frozen_modules(model: nn.Module, mode: str) -> list[nn.Module]:
    """The sub-modules that ``mode`` freezes."""
    if mode not in FREEZE_MODES:
        raise ValueError(f"unknown freeze mode {mode!r}; choose one of: {', '.join(FREEZE_MODES)}")
    if mode == "none":
        return []
    if mode == "features":
        return [model.backbone]
    return [model.backbone, model.neck]


def apply_freeze(model: nn.Module, mode: str) -> None:
    """Set ``requires_grad`` for ``mode`` (frozen parts off, everything else on)."""
    frozen = {id(p) for m in frozen_modules(model, mode) for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)


def train_mode(model: nn.Module, mode: str, norm_eval: bool = False) -> None:
    """``model.train()``, but frozen parts stay in eval mode.

    With ``norm_eval`` the pretrained parts' normalisation layers also stay in eval mode while
    they fine-tune: their running statistics keep the ImageNet values (their affine weights still
    learn), as in mmsegmentation's ``norm_eval``. Small batches of crops otherwise replace those
    statistics with noisy ones.
    """
    model.train()
    for m in frozen_modules(model, mode):
        m.eval()
    if norm_eval:
        for part in (model.backbone, model.neck):
            for m in part.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):  # the norms with running stats
                    m.eval()


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float) -> list[dict]:
    """Trainable parameters only: the head at ``lr``, unfrozen pretrained parts at ``lr * mult``."""
    pretrained = {id(p) for m in (model.backbone, model.neck) for p in m.parameters()}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in pretrained]
    body = [p for p in model.parameters() if p.requires_grad and id(p) in pretrained]
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"})
    return groups
