"""What a run is made of, built from its config: data, model, loss, optimizer, learning rates.

Each function takes the config (and what earlier ones built) and returns one collaborator, so
that each can be tested alone and the loop (:mod:`fcnseg.training.loop`) only wires them.
Everything here runs before the run folder is written: a bad option, file or dataset stops the
run with one line and nothing left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fcnseg import zoo
from fcnseg.data import DatasetInfo, SplitScan, median_frequency_weights, open_dataset, scan_split
from fcnseg.data.layout import DatasetLayout
from fcnseg.errors import DataError, FcnsegError
from fcnseg.models import build_model
from fcnseg.training.config import ConfigError, TrainConfig
from fcnseg.training.losses import build_loss, parse_class_weights
from fcnseg.training.repro import seed_epoch


@dataclass
class Data:
    """A dataset read and checked once: its description and the decoded pairs of two splits."""

    layout: DatasetLayout
    train: SplitScan
    val: SplitScan
    val_split: str

    @property
    def info(self) -> DatasetInfo:
        return self.layout.info


def load_data(cfg: TrainConfig, say: Callable[[str], None], progress: bool = True) -> Data:
    """Decode and check every pair of the training and validation splits.

    Validation uses the dataset's ``val`` split, or ``test`` where it has none (dataset1).
    """
    layout = open_dataset(cfg.data, strict=not cfg.skip_bad)
    val_split = layout.validation_split()
    for name in ("train", val_split):  # only with --skip-bad: files without a partner left out
        if unpaired := layout.problems.get(name):
            say(
                f"skipped {len(unpaired)} unpaired file(s) in {name} (--skip-bad); first: {unpaired[0]}"
            )
    scans = {
        name: scan_split(
            layout.split(name),
            layout.info,
            skip_bad=cfg.skip_bad,
            progress=f"reading {name}" if progress else None,
        )
        for name in ("train", val_split)
    }
    for name, scan in scans.items():
        if scan.skipped:
            say(
                f"skipped {len(scan.skipped)} bad pair(s) in {name} (--skip-bad); first: {scan.skipped[0]}"
            )
    data = Data(layout, scans["train"], scans[val_split], val_split)
    if data.train.samples and not data.train.pixels[:-1].any():
        # Every pixel void: the loss would be NaN at the first step ("lower --lr" misleads).
        raise DataError(
            f"{cfg.data}: the train masks have no labelled pixels (every pixel is void, label "
            f"{data.info.ignore_index}); check them with fcnseg verify-data"
        )
    cropped = cfg.augment in ("full", "strong")  # random crops of --crop-size: one size
    if not cropped and data.train.uniform_size is None and cfg.batch_size > 1:
        raise ConfigError(
            "training images differ in size: use --augment full or strong (random crops of "
            "--crop-size) or --batch-size 1"
        )
    return data


def build_run_model(cfg: TrainConfig, info: DatasetInfo) -> nn.Module:
    """The model, seeded so that a new head starts the same on every process and rerun."""
    seed_epoch(cfg.seed, 0, 0)
    return build_model(
        cfg.model,
        num_classes=info.num_classes,
        weights_backbone=cfg.weights_backbone,
        **cfg.model_kwargs(),
    )


def init_from(model: nn.Module, path: str) -> str:
    """Copy every tensor of a checkpoint whose name and shape match (staged FCN training)."""
    try:
        ckpt = zoo.load_checkpoint(path)  # a built-in model's name too
    except FcnsegError as exc:
        raise FcnsegError(f"--init-from {exc}") from exc
    own = model.state_dict()
    matched = {k: v for k, v in ckpt["model"].items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise FcnsegError(f"--init-from {path}: no tensor matches {model.arch['name']}")
    model.load_state_dict(matched, strict=False)
    return f"initialised {len(matched)}/{len(own)} tensors from {path} ({ckpt['arch']['name']})"


def class_weights(cfg: TrainConfig, data: Data) -> list[float] | None:
    """``--class-weights`` as one number per class (``median-freq`` counts the training masks)."""
    try:
        weights = parse_class_weights(cfg.class_weights, data.info.num_classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if weights == "median-freq":
        weights = median_frequency_weights(data.train).tolist()
    return weights


def describe_class_weights(weights: list[float], class_names: Sequence[str]) -> str:
    """The line a run prints about its class weights: each class's, as the loss uses them."""
    return "class weights: " + ", ".join(
        f"{name} {w:.2g}" for name, w in zip(class_names, weights, strict=True)
    )


def make_loss(
    cfg: TrainConfig, data: Data, weights: list[float] | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss on logits, with the class weights of :func:`class_weights`."""
    tensor = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
    return build_loss(cfg.loss, data.info.ignore_index, tensor)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters only (groups: head, pretrained parts)."""
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_mult)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def add_unfrozen_groups(
    cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """After unfreezing: give the optimizer the parameters it does not have yet."""
    have = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for g in param_groups(model, cfg.lr, cfg.backbone_lr_mult):
        g["params"] = [p for p in g["params"] if id(p) not in have]
        if g["params"]:
            optimizer.add_param_group(g)


def describe_freezing(model: nn.Module) -> str:
    """What is really frozen and what learns, in words and parameter counts (for the log)."""
    frozen = model.frozen_modules()
    n_frozen = sum(p.numel() for m in frozen for p in m.parameters())
    n_learn = sum(p.numel() for p in model.parameters() if p.requires_grad)
    has_neck = any(True for _ in model.neck.parameters())
    if not frozen:
        what = "nothing frozen"
    elif len(frozen) == 2 and has_neck:
        what = "frozen: backbone trunk and fc6/fc7"
    elif has_neck:
        what = "frozen: backbone trunk (fc6/fc7 learn)"
    else:
        what = "frozen: the whole backbone"
    return f"{what} ({n_frozen / 1e6:.1f}M parameters); learning {n_learn / 1e6:.2f}M"


def random_frozen_warning(cfg: TrainConfig) -> str | None:
    """A warning when a frozen backbone has random weights: it would never learn anything."""
    random = str(cfg.weights_backbone).lower() == "none"
    if random and cfg.freeze != "none" and not cfg.init_from:
        return (
            f"warning: the backbone has random weights (--weights-backbone none) and stays frozen "
            f"(--freeze {cfg.freeze}): its features will not learn, so expect poor accuracy. Use "
            "--weights-backbone imagenet or a weights file, --init-from a trained run, or "
            "--freeze none (fine for speed tests)"
        )
    return None


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float) -> list[dict]:
    """Trainable parameters only: the head at ``lr``, unfrozen pretrained parts at ``lr * mult``."""
    pretrained = {id(p) for m in (model.backbone, model.neck) for p in m.parameters()}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in pretrained]
    body = [p for p in model.parameters() if p.requires_grad and id(p) in pretrained]
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": lr * backbone_lr_mult, "name": "backbone"})
    return groups
