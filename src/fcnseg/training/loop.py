"""The training loop on Lightning Fabric: epochs, unfreezing, loaders, validation, bookkeeping.

:func:`run` checks what it can before starting processes and launches :func:`fit` on each one.
:func:`fit` builds the collaborators (:mod:`~fcnseg.training.setup`), then each epoch trains
(:func:`fcnseg.engine.train_one_epoch`), validates (:func:`fcnseg.engine.evaluate`, the same
function ``fcnseg evaluate`` uses) and commits the epoch to the run folder
(:mod:`~fcnseg.training.run_folder`), which decides what survives a kill.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from fcnseg.checkpoint import load_state
from fcnseg.data import SegmentationDataset, rare_classes
from fcnseg.data.transforms import eval_transform, train_transform
from fcnseg.engine import evaluate, train_one_epoch
from fcnseg.errors import first_line
from fcnseg.files import check_outside_data
from fcnseg.metrics import metrics_from_confusion
from fcnseg.progress import progress_bar
from fcnseg.training import setup
from fcnseg.training.config import ConfigError, TrainConfig, absolute_paths, resolve
from fcnseg.training.diagnostics import CollapseWatch
from fcnseg.training.distill import check_room, teacher_probabilities, with_distillation
from fcnseg.training.feature_cache import FeatureCache, cacheable
from fcnseg.training.repro import run_info, seed_epoch
from fcnseg.training.run_folder import (
    AVERAGED,
    CURVES,
    LAST,
    PICTURE,
    TRAINING_WEIGHTS,
    Progress,
    RunFolder,
    check_target,
)
from fcnseg.training.schedule import LRSchedule


@dataclass
class TrainResult:
    """What a finished (or early-stopped) run reports; the run folder holds the rest."""

    run_dir: Path
    best_mean_iu: float
    best_epoch: int
    epochs_done: int
    stopped_early: bool
    history: list[dict[str, float]] = field(repr=False, default_factory=list)


def run(cfg: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train as ``cfg`` says on the processes it asks for, writing the run folder."""
    check_target(cfg.out, resume)
    check_outside_data(cfg.out, cfg.data, "run folder (--out)")
    if resume:
        _check_resumed_epochs(cfg)
    cfg = absolute_paths(cfg)  # config.yaml then names the same files from any folder
    fabric = make_fabric(cfg)
    # Plain types cross the process boundary (Fabric's spawn launcher refuses frozen dataclasses).
    return fabric.launch(_fit_and_leave, cfg.to_dict(), resume)


def _check_resumed_epochs(cfg: TrainConfig) -> None:
    """ConfigError when ``--epochs`` is fewer than the run has already committed: resuming would
    train nothing and rewrite the run's config.yaml with an epoch count it has passed."""
    last = Path(cfg.out) / LAST
    if not last.is_file():
        return
    try:  # mmap: only the epoch is needed, not the weights read into memory
        done = int(torch.load(last, map_location="cpu", weights_only=True, mmap=True)["epoch"])
    except Exception:  # unreadable: RunFolder.start reports it with the reason
        return
    if cfg.epochs < done:
        raise ConfigError(
            f"--epochs {cfg.epochs}: the run in {cfg.out} has already done {done} epochs; "
            f"resume with --epochs {done} or more (more epochs continue it)"
        )


def make_fabric(cfg: TrainConfig):
    """Lightning Fabric for the config's accelerator, devices, strategy, precision and loggers."""
    from lightning_fabric import Fabric

    loggers = []
    if cfg.tensorboard:
        from lightning_fabric.loggers import TensorBoardLogger

        try:
            loggers.append(TensorBoardLogger(root_dir=cfg.out, name="tensorboard", version=""))
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "--tensorboard needs a TensorBoard writer: pip install 'fcnseg[tensorboard]'"
            ) from exc
    devices: int | str = int(cfg.devices) if cfg.devices.isdigit() else cfg.devices
    try:
        return Fabric(
            accelerator=cfg.accelerator,
            devices=devices,
            num_nodes=cfg.num_nodes,
            strategy=cfg.strategy,
            precision=cfg.precision,
            loggers=loggers,
        )
    except Exception as exc:  # Lightning's MisconfigurationException, ValueError, RuntimeError
        first = first_line(exc)
        raise ConfigError(
            f"cannot run on --accelerator {cfg.accelerator} --devices {cfg.devices} "
            f"--strategy {cfg.strategy} --precision {cfg.precision}: {first}"
        ) from exc


def _fit_and_leave(fabric, options: dict[str, Any], resume: bool) -> TrainResult:
    """:func:`fit`, then an orderly exit from the process group when there is one: a rank that
    exits while another still holds its gloo connections can abort it at teardown."""
    result = fit(fabric, resolve(options), resume)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        fabric.barrier()
        torch.distributed.destroy_process_group()
    return result


def fit(fabric, cfg: TrainConfig, resume: bool) -> TrainResult:
    """One process's part of a run: set up, then train epochs until the last or an early stop."""
    main = fabric.is_global_zero
    say = _printer(main)
    if cfg.unfreeze_at is not None and fabric.world_size > 1:
        raise ConfigError(
            "--unfreeze-at needs a single process; with several, train the frozen and the "
            "fine-tuning stages as two runs joined by --init-from"
        )
    data = setup.load_data(cfg, say, progress=main)
    net = setup.build_run_model(cfg, data.info)
    weights = setup.class_weights(cfg, data)
    if weights is not None:
        say(setup.describe_class_weights(weights, data.info.class_names))
    loss_fn = setup.make_loss(cfg, data, weights)
    if not resume:
        if warning := setup.random_frozen_warning(cfg):
            say(warning)
        if cfg.init_from:
            say(setup.init_from(net, cfg.init_from))
    soft = _teacher_pass(fabric, cfg, data, say) if cfg.distill_from else None
    folder = RunFolder(cfg.out, writer=main)
    folder.lock()
    try:
        progress, ckpt = folder.start(resume)
        dataset = {
            "root": str(data.layout.root),
            "layout": data.layout.kind,
            "val_split": data.val_split,
        }
        info = run_info(net, dataset)
        if ckpt is not None:  # with --average-from, "model" is the average: Session loads it
            weights = ckpt.get(TRAINING_WEIGHTS, ckpt["model"])
            load_state(net, weights, str(folder.path / "checkpoint_last.pt"))
            info = ckpt.get("run_info", info)
        folder.write_config(cfg.to_yaml(run_info=info))
        session = Session(fabric, cfg, data, net, loss_fn, progress, ckpt, info, soft)
        stopped = session.train_epochs(folder)
    finally:
        folder.unlock()
    say(
        f"done: best {data.val_split} mean IU {progress.best_mean_iu:.3f} at epoch "
        f"{progress.best_epoch}; run folder {folder.path}"
    )
    return TrainResult(
        folder.path, progress.best_mean_iu, progress.best_epoch, progress.epoch, stopped,
        progress.history,
    )  # fmt: skip


def _teacher_pass(fabric, cfg: TrainConfig, data: setup.Data, say) -> list[np.ndarray]:
    """The distillation teacher's probabilities of the training images (every process makes
    all of them: its shuffled batches may take any image)."""
    check_room(data.train.sizes, data.info.num_classes)
    t0 = time.perf_counter()
    soft = teacher_probabilities(
        cfg.distill_from, data.train.samples, data.info, data.train.decoded,
        scales=cfg.distill_scales, flip=cfg.distill_flip, device=fabric.device,
        desc="teacher pass" if fabric.is_global_zero else None,
    )  # fmt: skip
    mb = sum(p.nbytes for p in soft) / 2**20
    flips = ", each mirrored" if cfg.distill_flip else ""
    say(
        f"teacher pass: {len(soft)} images at scales "
        f"{' '.join(f'{s:g}' for s in cfg.distill_scales)}{flips}, {mb:.0f} MiB, "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return soft


def _printer(main: bool) -> Callable[[str], None]:
    return (lambda text: tqdm.write(text)) if main else (lambda text: None)


def freeze_at(cfg: TrainConfig, epoch: int) -> str:
    """The freeze mode in force during ``epoch`` (1-based)."""
    if cfg.unfreeze_at is not None and epoch >= cfg.unfreeze_at:
        return "none"
    return cfg.freeze


def _channels_last(net: nn.Module) -> None:
    """Parameters in channels-last, for the image path of training and validation (inputs are
    made channels-last too). One fine-tuning step of dataset1_rare_finetune (batch 8) on an idle
    2-core Zen 3: 1.39x NCHW's speed (``benchmarks/bench_channels_last.py``); inference runs
    channels-last as well (:func:`fcnseg.inference.prepare`). The cached-feature path keeps NCHW."""
    net.to(memory_format=torch.channels_last)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every item on exactly one process, none repeated.

    A ``DistributedSampler`` pads the last round with repeats so that every process gets the
    same count; for validation that would count some images twice in the summed metrics.
    """

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class Session:
    """One process's training objects, and the steps of an epoch."""

    def __init__(
        self, fabric, cfg, data, net, loss_fn, progress: Progress, ckpt, info, soft=None
    ) -> None:
        self.fabric, self.cfg, self.data, self.net, self.loss_fn = fabric, cfg, data, net, loss_fn
        # With a distillation teacher, training's loss also takes its probabilities (soft);
        # validation's stays the task loss, comparable with runs without one.
        self.train_loss = (
            loss_fn if soft is None else with_distillation(loss_fn, cfg.distill_weight)
        )
        self.progress, self.run_info = progress, info
        self.say = _printer(fabric.is_global_zero)
        self.mode = freeze_at(cfg, progress.epoch + 1)
        net.freeze(self.mode, norm_eval=cfg.norm_eval)
        self.use_cache = (
            cfg.feature_cache == "auto"
            and cacheable(self.mode, cfg.augment)
            and data.train.uniform_size is not None
            and data.val.uniform_size is not None
        )
        if not self.use_cache:
            _channels_last(net)  # before DDP builds its gradient buckets from the parameters
        self.model, self.optimizer = fabric.setup(net, setup.make_optimizer(cfg, net))
        if hasattr(self.model, "mark_forward_method"):  # decode() runs through DDP when cached
            self.model.mark_forward_method("decode")
        self.average = self._average(ckpt)
        info_ = data.info
        self.rare = rare_classes(data.train) if cfg.rare_crops else ()  # crops: config checks
        self.train_ds = SegmentationDataset(
            data.train.samples,
            info_,
            train_transform(
                cfg.augment,
                info_.ignore_index,
                cfg.crop_size,
                cfg.scale_range,
                rare_classes=self.rare,
                rare_crops=cfg.rare_crops,
            ),
            data.train.decoded,
            soft=soft,
        )
        self.val_ds = SegmentationDataset(
            data.val.samples, info_, eval_transform(), data.val.decoded
        )
        self.caches: dict[str, FeatureCache] = {}
        # The schedule's length comes from the loader itself: batches really taken per epoch.
        steps = len(self._loaders(self.train_ds, self.val_ds, progress.epoch + 1, 0)[0])
        self.schedule = LRSchedule(self.optimizer, cfg.lr_schedule, steps * cfg.epochs)
        if ckpt is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["schedule"])
        k = min(cfg.num_vis, len(self.val_ds))
        self.vis_idx = (
            sorted({int(i) for i in np.linspace(0, len(self.val_ds) - 1, k).round()}) if k else []
        )
        self.watch = CollapseWatch(info_.class_names)
        # The labels the last validation pass gave the picture's images; kept in the commit
        # record, so a resume that must redraw the picture needs no forward of its own.
        self.picture: dict[int, torch.Tensor] = dict(ckpt.get(PICTURE) or {}) if ckpt else {}

    # -- the epochs ------------------------------------------------------------------------------

    def train_epochs(self, folder: RunFolder) -> bool:
        """Epochs until the last one, or an early stop (True); each committed to ``folder``."""
        cfg, progress = self.cfg, self.progress
        if progress.epoch and not folder.picture_path(progress.epoch).is_file():
            self.draw(folder)  # the kill came between the commit and the pictures
        self.say(self._describe())
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            if self._patience_exhausted():
                return True
            self._maybe_unfreeze(epoch)
            row, cm = self.run_epoch(epoch)
            improved = progress.record(row)
            folder.commit(
                self._validated(),
                self.data.info,
                progress,
                improved,
                optimizer=self.optimizer.state_dict(),
                schedule=self.schedule.state_dict(),
                metrics={k: row[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
                confusion=cm.tolist(),
                working_size=self.data.train.median_long_side,
                config=cfg.to_dict(),
                run_info=self.run_info,
                last_only={PICTURE: self.picture, **self._average_record()},
            )
            self.draw(folder)
            self.fabric.log_dict({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            self._report(row, improved, cm)
        return self._patience_exhausted()

    def run_epoch(self, epoch: int) -> tuple[dict[str, float], np.ndarray]:
        """Train one epoch, then validate: the metrics row and the confusion matrix."""
        cfg = self.cfg
        if self.use_cache:
            self._build_caches()
            train_ds, val_ds, workers = self.caches["train"], self.caches["val"], 0
        else:
            train_ds, val_ds, workers = self.train_ds, self.val_ds, _workers(cfg)
        train_loader, val_loader = self._loaders(train_ds, val_ds, epoch, workers)
        t0 = time.perf_counter()
        self.model.train()  # frozen parts stay in eval mode: the model sees to it
        with progress_bar(
            total=len(train_loader),
            desc=f"epoch {epoch}/{cfg.epochs}",
            enabled=self.fabric.is_global_zero,
        ) as bar:

            def on_step(step: int, loss: float) -> None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}"
                )

            stats = train_one_epoch(
                self._train_forward(),
                train_loader,
                self.optimizer,
                self.train_loss,
                backward=self.fabric.backward,
                scheduler=self.schedule,
                on_step=on_step,
            )
        if self.average is not None and epoch >= cfg.average_from:
            self.average.update_parameters(self.net)
        self.model.eval()
        kept, keep = self._picture_keeper(len(val_ds))
        result = evaluate(
            self._val_forward(),
            val_loader,
            self.data.info.num_classes,
            self.data.info.ignore_index,
            loss_fn=self.loss_fn,
            reduce=self._sum if self.fabric.world_size > 1 else None,
            on_pred=keep,
        )
        self.picture = self._gathered(kept)
        m = metrics_from_confusion(result.confusion, self.data.info.class_names)
        row = {
            "epoch": epoch,
            "train_loss": stats["loss"],
            "val_loss": result.loss if result.loss is not None else float("nan"),
            **{k: m[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
            "epoch_time_s": time.perf_counter() - t0,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        return row, result.confusion.numpy()

    # -- the pieces ------------------------------------------------------------------------------

    def _loaders(self, train_ds, val_ds, epoch: int, workers: int) -> tuple[Any, Any]:
        fabric, bs = self.fabric, self.cfg.batch_size
        gen = seed_epoch(self.cfg.seed, epoch, fabric.global_rank)
        per_process = math.ceil(len(train_ds) / fabric.world_size)
        train = DataLoader(
            train_ds,
            batch_size=bs,
            shuffle=True,
            generator=gen,
            num_workers=workers,
            drop_last=per_process > bs,  # no odd last batch, unless it is the only one
        )
        val_bs = bs if self.data.val.uniform_size else 1
        sampler = ShardSampler(len(val_ds), fabric.global_rank, fabric.world_size)
        val = DataLoader(val_ds, batch_size=val_bs, sampler=sampler, num_workers=workers)
        train = fabric.setup_dataloaders(train)
        val = fabric.setup_dataloaders(val, use_distributed_sampler=False)
        if hasattr(train.sampler, "set_epoch"):
            train.sampler.set_epoch(epoch)
        return train, val

    def _build_caches(self) -> None:
        if self.caches:
            return
        t0, main = time.perf_counter(), self.fabric.is_global_zero
        data, device = self.data, self.fabric.device
        plain = SegmentationDataset(
            data.train.samples, data.info, eval_transform(), data.train.decoded
        )
        self.caches["train"] = FeatureCache.build(
            self.net, self.mode, plain, flips=self.cfg.augment == "flip", device=device,
            desc="caching train features" if main else None,
        )  # fmt: skip
        # Validation features stay fp32: per-epoch metrics then equal `fcnseg evaluate`'s.
        self.caches["val"] = FeatureCache.build(
            self.net, self.mode, self.val_ds, flips=False, device=device, half=False,
            desc=f"caching {data.val_split} features" if main else None,
        )  # fmt: skip
        mb = sum(c.nbytes() for c in self.caches.values()) / 2**20
        self.say(
            f"feature cache: frozen {self.mode} outputs for {len(plain)} + {len(self.val_ds)} "
            f"images, {mb:.0f} MiB, {time.perf_counter() - t0:.1f}s"
        )

    def _train_forward(self) -> Callable:
        model = self.model
        if self.use_cache:
            return lambda b: (model.decode(b[0], tuple(b[1].shape[-2:])), b[1])
        return lambda b: (model(b[0].contiguous(memory_format=torch.channels_last)), *b[1:])

    def _val_forward(self) -> Callable:
        """Validation through the bare model: DDP's forward would synchronise buffers, and the
        processes may run different numbers of batches here."""
        net, autocast = self._validated(), self.fabric.autocast

        def forward(batch):
            x, target = batch
            with autocast():
                if self.use_cache:
                    out = net.decode(x, tuple(target.shape[-2:]))
                else:
                    out = net(x.contiguous(memory_format=torch.channels_last))
            return out, target

        return forward

    def _average(self, ckpt: dict[str, Any] | None) -> AveragedModel | None:
        """The running average of the epochs' weights (``--average-from``), restored on resume.

        Buffers are not averaged: they follow the trained model (with ``norm_eval`` the
        pretrained BatchNorm statistics do not change, so the average is exact)."""
        if self.cfg.average_from is None:
            return None
        average = AveragedModel(self.net)
        average.module.eval()  # it only validates; training's train() calls never reach it
        if ckpt is not None and TRAINING_WEIGHTS in ckpt:
            load_state(average.module, ckpt["model"], "the run's weight average")
            average.n_averaged.fill_(int(ckpt[AVERAGED]))
        return average

    def _validated(self) -> nn.Module:
        """What validation runs and the checkpoints hold: the weight average once it has begun."""
        if self.average is not None and int(self.average.n_averaged):
            return self.average.module
        return self.net

    def _average_record(self) -> dict[str, Any]:
        """For the commit record: the weights that train on, when the checkpoint holds an average."""
        if self._validated() is self.net:
            return {}
        return {TRAINING_WEIGHTS: self.net.state_dict(), AVERAGED: int(self.average.n_averaged)}

    def _picture_keeper(self, length: int) -> tuple[dict[int, torch.Tensor], Callable]:
        """A dict, and the ``on_pred`` that fills it with the labels of the picture's images.

        The validation loader takes this process's share (:class:`ShardSampler`) in order, so
        the n-th label image of the pass is the n-th index of that share.
        """
        fabric, wanted, kept = self.fabric, set(self.vis_idx), {}
        order = iter(ShardSampler(length, fabric.global_rank, fabric.world_size))

        def keep(pred: torch.Tensor) -> None:
            for labels in pred:
                index = next(order)
                if index in wanted:
                    kept[index] = labels.to(torch.uint8).cpu()

        return kept, keep

    def _gathered(self, kept: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Every process's picture labels, on every process (a few small arrays)."""
        if self.fabric.world_size == 1:
            return kept
        parts: list[Any] = [None] * self.fabric.world_size
        torch.distributed.all_gather_object(parts, kept)
        return {i: labels for part in parts for i, labels in part.items()}

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        return self.fabric.all_reduce(t.to(self.fabric.device), reduce_op="sum").cpu()

    def _maybe_unfreeze(self, epoch: int) -> None:
        mode = freeze_at(self.cfg, epoch)
        if mode == self.mode:
            return
        self.mode = mode
        self.net.freeze(mode, norm_eval=self.cfg.norm_eval)
        setup.add_unfrozen_groups(self.cfg, self.net, self.optimizer)
        self.schedule.refresh()
        self.use_cache = False
        self.caches.clear()
        _channels_last(self.net)
        self.say(f"epoch {epoch}: unfreezing, fine-tuning everything from now on")

    def _patience_exhausted(self) -> bool:
        p, patience = self.progress, self.cfg.patience
        stop = patience is not None and p.epoch - p.best_epoch >= patience and p.epoch > 0
        if stop and not getattr(self, "_stop_said", False):
            self._stop_said = True
            self.say(
                f"early stop: validation mean IU has not improved for {patience} epochs "
                f"(best {p.best_mean_iu:.3f} at epoch {p.best_epoch})"
            )
        return stop

    def _describe(self) -> str:
        cfg, d = self.cfg, self.data
        return (
            f"training {cfg.model} on {d.layout.root} ({len(self.train_ds)} train, "
            f"{len(self.val_ds)} {d.val_split}); freeze={self.mode}: "
            f"{setup.describe_freezing(self.net)}; loss={cfg.loss}; feature cache "
            f"{'on' if self.use_cache else 'off'}{self._rare_note()}{self._distill_note()}"
            f"{self._average_note()}; "
            f"device {self.fabric.device} x{self.fabric.world_size}"
        )

    def _rare_note(self) -> str:
        if not self.rare:
            return ""
        names = ", ".join(self.data.info.class_names[k] for k in self.rare)
        return f"; {self.cfg.rare_crops:.0%} of crops centred on a rare class ({names})"

    def _distill_note(self) -> str:
        if not self.cfg.distill_from:
            return ""
        return f"; + {self.cfg.distill_weight:g} x distillation from {self.cfg.distill_from}"

    def _average_note(self) -> str:
        if self.cfg.average_from is None:
            return ""
        return f"; weights averaged over epochs {self.cfg.average_from}-{self.cfg.epochs}"

    def _report(self, row: dict[str, float], improved: bool, cm: np.ndarray) -> None:
        val_loss = "" if math.isnan(row["val_loss"]) else f"  val loss {row['val_loss']:.4f}"
        self.say(
            f"epoch {int(row['epoch'])}/{self.cfg.epochs}: loss {row['train_loss']:.4f}{val_loss}  "
            f"pixel acc {row['pixel_acc']:.3f}  mean acc {row['mean_acc']:.3f}  "
            f"mean IU {row['mean_iu']:.3f}  fw IU {row['fw_iu']:.3f}  "
            f"({row['epoch_time_s']:.1f}s){'  *best*' if improved else ''}"
        )
        if self.fabric.is_global_zero:
            for message in self.watch.check(cm):
                self.say(f"warning: {message}")

    def draw(self, folder: RunFolder) -> None:
        """The epoch's picture (fixed validation images: image | truth | prediction), curves.

        The predictions are the validation pass's own (:attr:`picture`, also kept in the
        commit record): drawing runs no forward, so it can neither differ from the metrics nor
        disturb the model (BatchNorm statistics on resume).
        """
        if not self.fabric.is_global_zero or not self.progress.history:
            return
        from fcnseg.viz import curves, triplet_panel

        row, info = self.progress.history[-1], self.data.info
        epoch = int(row["epoch"])
        if self.vis_idx and all(i in self.picture for i in self.vis_idx):
            rows = []
            for i in self.vis_idx:
                image, target = self.val_ds[i]
                rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                rows.append((rgb, target.numpy(), self.picture[i].numpy()))
            title = f"epoch {epoch}: {self.data.val_split} mean IU {row['mean_iu']:.3f}"
            triplet_panel(rows, info, folder.picture_path(epoch), title=title)
        elif self.vis_idx:  # resumed from a checkpoint of fcnseg 0.2 or older
            self.say(f"no picture for epoch {epoch}: its checkpoint holds no validation labels")
        curves(self.progress.history, folder.path / CURVES, val_split=self.data.val_split)


def _workers(cfg: TrainConfig) -> int:
    if cfg.workers is not None:
        return cfg.workers
    return min(4, os.cpu_count() or 1)
