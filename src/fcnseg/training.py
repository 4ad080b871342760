"""``fcnseg train``: configuration, run folder, the epoch loop on Lightning Fabric, resume.

The engine (:mod:`fcnseg.engine`) computes; this module decides what to save, draw and print.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcnseg import __version__
from fcnseg.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from fcnseg.data import SegmentationDataset, median_frequency_weights, open_dataset, scan_split
from fcnseg.data.transforms import AUGMENTS, eval_transform, train_transform
from fcnseg.ema import WeightEMA
from fcnseg.engine import evaluate, train_one_epoch
from fcnseg.errors import FcnsegError
from fcnseg.feature_cache import FeatureCache, cacheable
from fcnseg.freeze import FREEZE_MODES, apply_freeze, param_groups, train_mode
from fcnseg.losses import LOSSES, build_loss, parse_class_weights
from fcnseg.metrics import metrics_from_confusion
from fcnseg.models import build_model
from fcnseg.schedule import LRSchedule

# Every option of a run, with its default. A YAML --config overrides these; flags override both.
DEFAULTS: dict[str, Any] = {
    "data": None,
    "out": None,
    "model": "fcn8s_vgg16",
    "weights_backbone": "imagenet",
    "freeze": "features",
    "unfreeze_at": None,
    "init_from": None,
    "epochs": 50,
    "batch_size": 8,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "backbone_lr_mult": 1.0,
    "lr_schedule": "poly",
    "loss": "ce",
    "class_weights": "none",
    "augment": "flip",
    "crop_size": 320,
    "scale_range": [0.5, 2.0],
    "norm_eval": False,
    "feature_cache": "auto",
    "skip_bad": False,
    "seed": 0,
    "workers": None,
    "accelerator": "auto",
    "devices": 1,
    "num_nodes": 1,
    "strategy": "auto",
    "precision": "32",
    "num_vis": 4,
    "dropout": None,
    "fc_channels": None,
    "input_scale": None,
    "ema": None,
}
OPTIMIZERS = ("sgd", "adamw")
METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "pixel_acc",
    "mean_acc",
    "mean_iu",
    "fw_iu",
    "epoch_time_s",
    "lr",
]
COLLAPSE_PATIENCE = 3


def resolve_config(flags: dict[str, Any], config_file: str | None) -> dict[str, Any]:
    """Defaults, then the YAML file, then the flags the user gave (``None`` = not given)."""
    cfg = dict(DEFAULTS)
    if config_file:
        cfg.update(read_config_file(config_file))
    cfg.update({k: v for k, v in flags.items() if v is not None})
    validate_config(cfg)
    return cfg


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FcnsegError(f"{path}: cannot read the config ({exc})") from exc
    if not isinstance(data, dict):
        raise FcnsegError(f"{path}: a config must be a mapping of option: value")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(DEFAULTS) - {"run_info"})
    if unknown:
        raise FcnsegError(f"{path}: unknown options {unknown}; known: {', '.join(DEFAULTS)}")
    data.pop("run_info", None)
    return data


def validate_config(cfg: dict[str, Any]) -> None:
    """FcnsegError naming the first bad option."""
    choices = {
        "freeze": FREEZE_MODES,
        "loss": LOSSES,
        "augment": AUGMENTS,
        "optimizer": OPTIMIZERS,
        "lr_schedule": ("constant", "poly"),
        "feature_cache": ("auto", "off"),
        "precision": ("32", "bf16-mixed", "16-mixed", "32-true"),
    }
    cfg["precision"] = str(cfg["precision"])
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise FcnsegError(
                f"--{key.replace('_', '-')} must be one of {', '.join(allowed)}, got {cfg[key]!r}"
            )
    for key in ("epochs", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise FcnsegError(
                f"--{key.replace('_', '-')} must be a positive integer, got {cfg[key]!r}"
            )
    for key in ("lr", "momentum", "weight_decay", "backbone_lr_mult"):
        if not isinstance(cfg[key], int | float) or cfg[key] < 0:
            raise FcnsegError(f"--{key.replace('_', '-')} must be a number >= 0, got {cfg[key]!r}")
    sr = cfg["scale_range"]
    if (
        not isinstance(sr, list | tuple)
        or len(sr) != 2
        or not all(isinstance(v, int | float) for v in sr)
        or not 0 < sr[0] <= sr[1]
    ):
        raise FcnsegError(f"--scale-range must be two numbers 0 < LOW <= HIGH, got {sr!r}")
    cfg["scale_range"] = [float(v) for v in sr]
    if not isinstance(cfg["norm_eval"], bool):
        raise FcnsegError(f"norm_eval must be true or false, got {cfg['norm_eval']!r}")
    if cfg["unfreeze_at"] is not None and (
        not isinstance(cfg["unfreeze_at"], int) or cfg["unfreeze_at"] < 1
    ):
        raise FcnsegError(f"--unfreeze-at must be an epoch number >= 1, got {cfg['unfreeze_at']!r}")
    scale = cfg["input_scale"]
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 4
    ):
        raise FcnsegError(f"--input-scale must be a number in (0, 4], got {scale!r}")
    ema = cfg["ema"]
    if ema is not None and (
        isinstance(ema, bool) or not isinstance(ema, int | float) or not 0 < ema < 1
    ):
        raise FcnsegError(f"--ema must be a decay in (0, 1), e.g. 0.999, got {ema!r}")
    if not cfg["data"]:
        raise FcnsegError("--data is required (a dataset folder)")
    if not cfg["out"]:
        raise FcnsegError("--out is required (the run folder to write)")


def git_hash() -> str | None:
    """The commit of the fcnseg source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def state_checksum(module: nn.Module) -> str:
    """SHA-256 over a module's tensors: identifies the backbone weights a run started from."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def seed_epoch(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Seed every RNG from (seed, epoch, rank): a resumed run draws what the original would have."""
    s = (seed * 100_003 + epoch * 1_009 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def freeze_at(cfg: dict[str, Any], epoch: int) -> str:
    """The freeze mode in force during ``epoch`` (1-based)."""
    if cfg["unfreeze_at"] is not None and epoch >= cfg["unfreeze_at"]:
        return "none"
    return cfg["freeze"]


def read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow(
            {k: (int(row[k]) if k == "epoch" else f"{row[k]:.6g}") for k in METRIC_COLUMNS}
        )
    atomic_write(run_dir / "metrics.csv", lambda tmp: Path(tmp).write_text(buf.getvalue()))


@dataclass
class CollapseWatch:
    """Notices predictions collapsing onto a few classes, or classes never recalled."""

    class_names: tuple[str, ...]
    patience: int = COLLAPSE_PATIENCE

    def __post_init__(self) -> None:
        self.zero_streak = np.zeros(len(self.class_names), dtype=int)
        self.warned: set[int] = set()

    def check(self, cm: np.ndarray) -> list[str]:
        messages = []
        used = int((cm.sum(axis=0) > 0).sum())
        truth = cm.sum(axis=1)
        if used <= 2 and len(self.class_names) > 2:
            messages.append(
                f"class collapse: predictions use only {used} class(es). Likely causes: a loss "
                "dominated by the big classes (try --class-weights median-freq or --loss focal / "
                "ce+dice), a learning rate too high or too low, or too few epochs"
            )
        recall_zero = (np.diag(cm) == 0) & (truth > 0)
        self.zero_streak = np.where(recall_zero, self.zero_streak + 1, 0)
        late = [
            i
            for i in np.flatnonzero(self.zero_streak >= self.patience)
            if int(i) not in self.warned
        ]
        if late:
            self.warned.update(int(i) for i in late)
            names = ", ".join(self.class_names[i] for i in late)
            messages.append(
                f"classes never predicted for {self.patience} epochs: {names}. Likely causes: rare "
                "classes outweighed (try --class-weights median-freq), too small a crop, or an "
                "output too coarse (FCN-32s: try fcn8s)"
            )
        return messages


def _forward_images(model: nn.Module):
    def forward(batch):
        image, target = batch
        return model(image), target

    return forward


def _forward_features(model: nn.Module):
    def forward(batch):
        feats, target = batch
        return model.decode(feats, (target.shape[-2], target.shape[-1])), target

    return forward


def _make_optimizer(cfg: dict[str, Any], groups: list[dict]) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        )
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def _init_from(model: nn.Module, path: str) -> str:
    """Copy every tensor of a checkpoint whose name and shape match (staged FCN training)."""
    try:
        ckpt = load_checkpoint(path)
    except FcnsegError as exc:
        raise FcnsegError(f"--init-from {exc}") from exc
    own = model.state_dict()
    matched = {k: v for k, v in ckpt["model"].items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise FcnsegError(f"--init-from {path}: no tensor matches {model.arch['name']}")
    model.load_state_dict(matched, strict=False)
    return f"initialised {len(matched)}/{len(own)} tensors from {path} ({ckpt['arch']['name']})"


def _workers(cfg: dict[str, Any]) -> int:
    if cfg["workers"] is not None:
        return int(cfg["workers"])
    return min(4, os.cpu_count() or 1)


def train(cfg: dict[str, Any], *, resume: bool = False) -> dict[str, Any]:
    """Train as ``cfg`` says, writing the run folder; returns the best validation metrics."""
    from lightning_fabric import Fabric

    fabric = Fabric(
        accelerator=cfg["accelerator"],
        devices=cfg["devices"],
        num_nodes=cfg["num_nodes"],
        strategy=cfg["strategy"],
        precision=cfg["precision"],
    )
    return fabric.launch(_train_and_leave, cfg, resume)


def _train_and_leave(fabric, cfg: dict[str, Any], resume: bool) -> dict[str, Any]:
    """:func:`_train`, then an orderly exit from the process group when there is one: a rank that
    exits while another still holds its gloo connections can abort it at teardown (seen once as
    a SIGABRT in the 2-process CPU test)."""
    result = _train(fabric, cfg, resume)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        fabric.barrier()
        torch.distributed.destroy_process_group()
    return result


def _train(fabric, cfg: dict[str, Any], resume: bool) -> dict[str, Any]:
    run_dir = Path(cfg["out"])
    main = fabric.is_global_zero
    say = print if main else (lambda *a, **k: None)
    if cfg["unfreeze_at"] is not None and fabric.world_size > 1:
        raise FcnsegError(
            "--unfreeze-at needs a single process; with several, train the frozen and the "
            "fine-tuning stages as two runs joined by --init-from"
        )

    # Data first: bad data stops the run before any work.
    layout = open_dataset(cfg["data"])
    info = layout.info
    val_split = layout.validation_split()
    train_scan = scan_split(
        layout.split("train"),
        info,
        skip_bad=cfg["skip_bad"],
        progress="reading train" if main else None,
    )
    val_scan = scan_split(
        layout.split(val_split),
        info,
        skip_bad=cfg["skip_bad"],
        progress=f"reading {val_split}" if main else None,
    )
    for name, scan in (("train", train_scan), (val_split, val_scan)):
        if scan.skipped:
            say(
                f"skipped {len(scan.skipped)} bad pair(s) in {name} (--skip-bad); first: {scan.skipped[0]}"
            )
    if cfg["augment"] != "full" and train_scan.uniform_size is None and cfg["batch_size"] > 1:
        raise FcnsegError(
            "training images differ in size: use --augment full (random crops of --crop-size) "
            "or --batch-size 1"
        )

    # Model, weights, freezing. Seeded, so that a new head starts the same on every rank and rerun.
    seed_epoch(cfg["seed"], 0, 0)
    model = build_model(
        cfg["model"],
        num_classes=info.num_classes,
        weights_backbone=cfg["weights_backbone"],
        dropout=cfg["dropout"],
        fc_channels=cfg["fc_channels"],
        input_scale=cfg["input_scale"],
    )
    run_info = {
        "fcnseg_version": __version__,
        "git_hash": git_hash(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
        "backbone_sha256": state_checksum(model.backbone),
        "dataset": {"root": str(layout.root), "layout": layout.kind, "val_split": val_split},
    }
    if cfg["init_from"] and not resume:
        say(_init_from(model, cfg["init_from"]))
    weights = parse_class_weights(cfg["class_weights"], info.num_classes)
    if weights == "median-freq":
        weights = median_frequency_weights(train_scan).tolist()
    class_weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
    loss_fn = build_loss(cfg["loss"], info.ignore_index, class_weights)

    start_epoch, best, history, ckpt = 0, -1.0, [], None
    last = run_dir / "checkpoint_last.pt"
    if resume and last.is_file():
        ckpt = load_checkpoint(last)
        # With --ema, "model" holds the average (what evaluate and predict use) and
        # "train_model" the weights that training continues from.
        model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        start_epoch, best = int(ckpt["epoch"]), float(ckpt["best_mean_iu"])
        history = [h for h in read_history(run_dir) if h["epoch"] <= start_epoch]
        run_info = ckpt.get("run_info", run_info)
    elif not resume and last.is_file():
        raise FcnsegError(
            f"{run_dir} already holds a run: continue it with --resume {run_dir} or choose another --out"
        )
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "img").mkdir(exist_ok=True)
        text = yaml.safe_dump({**cfg, "run_info": run_info}, sort_keys=False)
        atomic_write(run_dir / "config.yaml", lambda tmp: Path(tmp).write_text(text))

    mode = freeze_at(cfg, start_epoch + 1)
    apply_freeze(model, mode)
    optimizer = _make_optimizer(cfg, param_groups(model, cfg["lr"], cfg["backbone_lr_mult"]))
    model, optimizer = fabric.setup(model, optimizer)
    net = model  # the bare FCN under Fabric's wrappers, for saving and direct calls
    while hasattr(net, "module"):
        net = net.module
    if hasattr(model, "mark_forward_method"):  # decode() runs through DDP when features are cached
        model.mark_forward_method("decode")
    # --ema: validation, pictures and checkpoints use the weights' moving average.
    ema = WeightEMA(net, cfg["ema"]) if cfg["ema"] else None
    if ema is not None and ckpt is not None and "train_model" in ckpt:
        ema.load(ckpt["model"], ckpt["ema_steps"])
    shown = ema.module if ema is not None else net

    train_ds = SegmentationDataset(
        train_scan.samples,
        info,
        train_transform(
            cfg["augment"], info.ignore_index, cfg["crop_size"], tuple(cfg["scale_range"])
        ),
        train_scan.decoded,
    )
    val_ds = SegmentationDataset(val_scan.samples, info, eval_transform(), val_scan.decoded)
    val_bs = cfg["batch_size"] if val_scan.uniform_size else 1
    use_cache = (
        cfg["feature_cache"] == "auto"
        and cacheable(mode, cfg["augment"])
        and train_scan.uniform_size is not None
        and val_scan.uniform_size is not None
    )
    steps_per_epoch = math.ceil(len(train_ds) / (cfg["batch_size"] * fabric.world_size))
    schedule = LRSchedule(optimizer, cfg["lr_schedule"], steps_per_epoch * cfg["epochs"])
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])

    caches: dict[str, FeatureCache] = {}

    def build_caches() -> None:
        if not use_cache or caches:
            return
        t0 = time.perf_counter()
        plain_train = SegmentationDataset(
            train_scan.samples, info, eval_transform(), train_scan.decoded
        )
        caches["train"] = FeatureCache.build(
            net,
            mode,
            plain_train,
            flips=cfg["augment"] == "flip",
            device=fabric.device,
            desc="caching train features" if main else None,
        )
        caches["val"] = FeatureCache.build(
            net,
            mode,
            val_ds,
            flips=False,
            device=fabric.device,
            desc=f"caching {val_split} features" if main else None,
        )
        mb = sum(c.nbytes() for c in caches.values()) / 2**20
        say(
            f"feature cache: frozen {mode} outputs for {len(plain_train)} + {len(val_ds)} images, "
            f"{mb:.0f} MiB, {time.perf_counter() - t0:.1f}s"
        )

    # Fixed validation images for the per-epoch pictures, spread over the split (not neighbours).
    k = min(cfg["num_vis"], len(val_ds))
    vis_idx = sorted({int(i) for i in np.linspace(0, len(val_ds) - 1, k).round()}) if k else []
    watch = CollapseWatch(info.class_names)
    say(
        f"training {cfg['model']} on {layout.root} ({len(train_ds)} train, {len(val_ds)} "
        f"{val_split}), freeze={mode}, loss={cfg['loss']}, feature cache "
        f"{'on' if use_cache else 'off'}, device {fabric.device} x{fabric.world_size}"
    )

    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        new_mode = freeze_at(cfg, epoch)
        if new_mode != mode:
            mode = new_mode
            apply_freeze(net, mode)
            have = {id(p) for g in optimizer.param_groups for p in g["params"]}
            for g in param_groups(net, cfg["lr"], cfg["backbone_lr_mult"]):
                g["params"] = [p for p in g["params"] if id(p) not in have]
                if g["params"]:
                    optimizer.add_param_group(g)
            schedule.refresh()
            use_cache = False
            caches.clear()
            say(f"epoch {epoch}: unfreezing, fine-tuning everything from now on")
        build_caches()
        gen = seed_epoch(cfg["seed"], epoch, fabric.global_rank)
        t0 = time.perf_counter()
        if use_cache:
            loader = DataLoader(
                caches["train"],
                batch_size=cfg["batch_size"],
                shuffle=True,
                generator=gen,
                drop_last=len(caches["train"]) > cfg["batch_size"],
            )
            val_loader = DataLoader(caches["val"], batch_size=val_bs)
            forward = _forward_features(model)
            val_forward = _forward_features(shown) if ema is not None else forward
        else:
            workers = _workers(cfg)
            loader = DataLoader(
                train_ds,
                batch_size=cfg["batch_size"],
                shuffle=True,
                generator=gen,
                num_workers=workers,
                drop_last=len(train_ds) > cfg["batch_size"],
                persistent_workers=False,
            )
            val_loader = DataLoader(val_ds, batch_size=val_bs, num_workers=workers)
            forward = _forward_images(model)
            val_forward = _forward_images(shown) if ema is not None else forward
        loader, val_loader = fabric.setup_dataloaders(loader, val_loader)
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        train_mode(net, mode, norm_eval=cfg["norm_eval"])
        bar = tqdm(
            total=len(loader), desc=f"epoch {epoch}/{cfg['epochs']}", disable=not main, leave=False
        )

        def on_step(step: int, loss: float, bar: tqdm = bar) -> None:
            if ema is not None:
                ema.update(net)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")

        stats = train_one_epoch(
            forward,
            loader,
            optimizer,
            loss_fn,
            backward=fabric.backward,
            scheduler=schedule,
            on_step=on_step,
        )
        bar.close()
        net.eval()
        cm = evaluate(
            val_forward,
            val_loader,
            info.num_classes,
            info.ignore_index,
            reduce=lambda t: fabric.all_reduce(t, reduce_op="sum"),
        )
        cm = cm.cpu().numpy()
        m = metrics_from_confusion(cm, info.class_names)
        elapsed = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "train_loss": stats["loss"],
            **{k: m[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
            "epoch_time_s": elapsed,
            "lr": optimizer.param_groups[0]["lr"],
        }
        history.append(row)
        improved = m["mean_iu"] > best
        best = max(best, m["mean_iu"])
        if main:
            extra = {
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "epoch": epoch,
                "best_mean_iu": best,
                "metrics": {k: m[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
                "config": cfg,
                "run_info": run_info,
            }
            if ema is not None:
                extra.update(train_model=net.state_dict(), ema_steps=ema.steps)
            save_checkpoint(last, shown, info, **extra)
            if improved:
                save_checkpoint(run_dir / "checkpoint_best.pt", shown, info, **extra)
            write_history(run_dir, history)
            _pictures(shown, val_ds, vis_idx, info, run_dir, epoch, m, history)
            say(
                f"epoch {epoch}/{cfg['epochs']}: loss {stats['loss']:.4f}  "
                f"pixel acc {m['pixel_acc']:.3f}  mean acc {m['mean_acc']:.3f}  "
                f"mean IU {m['mean_iu']:.3f}  fw IU {m['fw_iu']:.3f}  "
                f"({elapsed:.1f}s){'  *best*' if improved else ''}"
            )
            for message in watch.check(cm):
                say(f"warning: {message}")
    say(f"done: best {val_split} mean IU {best:.3f}; run folder {run_dir}")
    return {"best_mean_iu": best, "history": history}


@torch.no_grad()
def _pictures(
    net, val_ds, vis_idx, info, run_dir: Path, epoch: int, m: dict, history: list
) -> None:
    from fcnseg.viz import curves, triplet_panel

    if vis_idx:
        rows = []
        device = next(net.parameters()).device
        for i in vis_idx:
            image, target = val_ds[i]
            pred = net(image[None].to(device)).argmax(1)[0].cpu().numpy()
            rows.append(
                (
                    (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
                    target.numpy(),
                    pred,
                )
            )
        triplet_panel(
            rows,
            info,
            run_dir / "img" / f"epoch_{epoch:03d}.png",
            title=f"epoch {epoch}: mean IU {m['mean_iu']:.3f}",
        )
    curves(history, run_dir / "curves.png")
