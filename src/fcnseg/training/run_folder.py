"""The run folder: what a run writes, in an order that a kill at any moment can be resumed from.

Files: ``config.yaml`` (resolved options and run info), ``metrics.csv`` (one row per epoch),
``checkpoint_last.pt`` (every epoch), ``checkpoint_best.pt`` (best validation mean IU),
``img/epoch_NNN.png`` and ``curves.png`` (pictures), ``tensorboard/`` (optional), ``.lock``.

``checkpoint_last.pt`` is the commit record. It holds the weights and the optimizer, and also the
metrics of every epoch so far, which epoch is the best and the labels that the epoch's validation
pass gave the picture's images (so that a resume redraws the picture without a forward). An epoch's bookkeeping runs:

1. if the epoch is the best so far, its checkpoint is written as ``.checkpoint_best.eNNNN.pt``;
2. ``checkpoint_last.pt`` is written: the epoch is committed;
3. the pending best replaces ``checkpoint_best.pt``;
4. ``metrics.csv`` is rewritten from the committed metrics; then the pictures are drawn.

Every write is atomic (:mod:`fcnseg.files`). A kill before 2 leaves the previous epoch committed:
resume deletes the pending best and redoes the epoch. A kill after 2 leaves steps 3-4 undone:
resume completes them from the commit record. So after any kill, resume gives the same
``metrics.csv``, ``checkpoint_best.pt`` and weights as an uninterrupted run. A process training
into the folder holds ``.lock``; a second one is refused.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.errors import FcnsegError
from fcnseg.files import OutputError, atomic_write, check_writable_dir, remove_temporaries

LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
CURVES = "curves.png"
LOCK = ".lock"
PICTURE = "picture_labels"  # checkpoint_last.pt: {val index: (H, W) uint8 labels} for img/
# checkpoint_last.pt of a run that averages its weights (--average-from): "model" is the average;
# these are the weights that train on, and how many epochs' weights the average holds.
TRAINING_WEIGHTS = "training_weights"
AVERAGED = "averaged_epochs"
METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "pixel_acc",
    "mean_acc",
    "mean_iu",
    "fw_iu",
    "epoch_time_s",
    "lr",
]
_PENDING = re.compile(r"\.checkpoint_best\.e(\d+)\.pt")


class RunFolderError(FcnsegError):
    """The run folder is in use, is not a run folder, or holds a run that was not asked for."""


@dataclass
class Progress:
    """What the committed epochs say: the last epoch, the best one and every epoch's metrics."""

    epoch: int = 0
    best_mean_iu: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, row: dict[str, float]) -> bool:
        """Add an epoch's metrics; True when it is the best so far."""
        self.history.append(row)
        self.epoch = int(row["epoch"])
        if row["mean_iu"] > self.best_mean_iu:
            self.best_mean_iu, self.best_epoch = row["mean_iu"], self.epoch
            return True
        return False

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "best_mean_iu": self.best_mean_iu,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }


def check_target(path: str | Path, resume: bool) -> Path:
    """Before any work: ``path`` can hold a new run (or, with ``resume``, holds one).

    A new run goes into a folder that does not exist yet, an empty one, or one that a run started
    but never committed an epoch to (its own ``config.yaml``, lock and temporaries, no
    checkpoint). Anything else is refused, a hand-written ``config.yaml`` included: fcnseg never
    writes into a folder that holds files it did not make.
    """
    path = check_writable_dir(path, "run folder (--out)")
    config = path / CONFIG
    if config.exists() and not config_is_ours(config):
        raise RunFolderError(
            f"{config}: not a config.yaml written by fcnseg train (no run_info); a run needs a "
            "new or empty --out (pass your file with --config)"
        )
    if resume:
        if not config.is_file():
            raise RunFolderError(f"{path}: no {CONFIG}, not a run folder to resume")
        return path
    if (path / LAST).is_file():
        raise RunFolderError(
            f"{path} already holds a run: continue it with --resume {path} or choose another --out"
        )
    if path.is_dir():
        # Without fcnseg's config.yaml (written first), only a lock and temporaries are a run's.
        own = {CONFIG, LOCK, METRICS, "img", "tensorboard"} if config.exists() else {LOCK}
        foreign = sorted(
            p.name for p in path.iterdir() if p.name not in own and not _is_ours(p.name)
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise RunFolderError(
                f"{path}: folder is not empty ({shown}); a new run needs a new or empty --out"
            )
    return path


MAX_CONFIG = 1 << 20  # fcnseg's config.yaml is a few kilobytes
_RUN_INFO = re.compile(r"^run_info:[ \t]*\n(?:[ \t].*\n)*?  fcnseg_version: ", re.MULTILINE)


def config_is_ours(path: str | Path) -> bool:
    """Whether ``config.yaml`` is one fcnseg train wrote: a regular file whose ``run_info``
    mapping holds ``fcnseg_version`` (looked for in the text: a foreign file is not parsed)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_CONFIG:
            return False
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return _RUN_INFO.search(text) is not None


class RunFolder:
    """The run folder of one process; only the ``writer`` (rank 0) writes."""

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self._lock: filelock.BaseFileLock | None = None

    # -- the lock --------------------------------------------------------------------------------

    def lock(self) -> None:
        """Hold ``.lock`` while training (released on exit, also after ``kill -9``)."""
        if not self.writer:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the run folder ({exc.strerror})"
            ) from exc
        lock = filelock.FileLock(self.path / LOCK, blocking=False)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise RunFolderError(
                f"{self.path}: another fcnseg process is training into this folder; wait for it "
                "or choose another --out"
            ) from exc
        self._lock = lock

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- starting and resuming -------------------------------------------------------------------

    def start(self, resume: bool) -> tuple[Progress, dict[str, Any] | None]:
        """The committed progress and checkpoint (resume), after completing a cut-off epoch."""
        if not resume:
            if (self.path / LAST).is_file():  # a twin started between the check and the lock
                check_target(self.path, resume=False)
            if self.writer:
                self._clean_uncommitted()
            return Progress(), None
        last = self.path / LAST
        if not last.is_file():  # killed before its first epoch: start over
            if self.writer:
                self._clean_uncommitted()
            return Progress(), None
        if self.writer:
            self._remove_temporaries()
        ckpt = load_checkpoint(last)
        progress = self._progress_of(ckpt)
        if self.writer:
            self._finish_commit(progress)
        return progress, ckpt

    def _remove_temporaries(self) -> None:
        """What a kill in the middle of an atomic write leaves (``.NAME.XXXX.tmp``)."""
        pending = ".checkpoint_best.e*.pt"
        remove_temporaries(self.path, (LAST, BEST, CONFIG, METRICS, CURVES, pending))
        if (self.path / "img").is_dir():
            remove_temporaries(self.path / "img", ("epoch_*",))

    def _clean_uncommitted(self) -> None:
        self._remove_temporaries()
        for pending in self.path.glob(".checkpoint_best.e*.pt"):
            pending.unlink(missing_ok=True)

    def _progress_of(self, ckpt: dict[str, Any]) -> Progress:
        epoch = int(ckpt["epoch"])
        history = ckpt.get("history")
        if history is None:  # checkpoints of fcnseg 0.1 kept the metrics only in metrics.csv
            history = [h for h in read_history(self.path) if h["epoch"] <= epoch]
        best_epoch = int(ckpt.get("best_epoch", 0))
        return Progress(epoch, float(ckpt["best_mean_iu"]), best_epoch, list(history))

    def _finish_commit(self, progress: Progress) -> None:
        """Steps 3-4 of the last committed epoch, and no trace of an uncommitted one."""
        for pending in self.path.glob(".checkpoint_best.e*.pt"):
            m = _PENDING.fullmatch(pending.name)
            if m and int(m[1]) == progress.best_epoch:
                os.replace(pending, self.path / BEST)
            else:
                pending.unlink(missing_ok=True)
        write_history(self.path, progress.history)

    def write_config(self, text: str) -> None:
        if self.writer:
            atomic_write(self.path / CONFIG, lambda tmp: Path(tmp).write_text(text))

    # -- an epoch's bookkeeping ------------------------------------------------------------------

    def commit(
        self,
        net,
        info,
        progress: Progress,
        improved: bool,
        last_only: dict[str, Any] | None = None,
        **state: Any,
    ) -> None:
        """Steps 1-4 (see the module's description) for the epoch ``progress`` ends with.

        ``state`` goes into both checkpoints; ``last_only`` (what only a resume needs, such as
        the picture's labels) into the commit record alone.
        """
        if not self.writer:
            return
        extra = {**state, **progress.state()}
        pending = self.path / f".checkpoint_best.e{progress.epoch:04d}.pt"
        if improved:
            save_checkpoint(pending, net, info, **extra)
        save_checkpoint(self.path / LAST, net, info, **extra, **(last_only or {}))
        if improved:
            os.replace(pending, self.path / BEST)
        write_history(self.path, progress.history)

    def picture_path(self, epoch: int) -> Path:
        return self.path / "img" / f"epoch_{epoch:03d}.png"


def _is_ours(name: str) -> bool:
    """Temporary and pending files of a run that was killed before it committed an epoch."""
    prefixes = (".checkpoint_", "..checkpoint_", ".config.yaml.", ".metrics.csv.", ".curves.png.")
    return name.startswith(prefixes)


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``metrics.csv`` as numbers (empty cells: NaN)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    with path.open() as f:
        return [
            {k: float(v) if v else float("nan") for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def write_history(run_dir: str | Path, history: list[dict[str, float]]) -> None:
    """``metrics.csv`` with one row per epoch (a missing value, e.g. no val loss, stays empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _cell(k, row.get(k)) for k in METRIC_COLUMNS})
    atomic_write(Path(run_dir) / METRICS, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def _cell(key: str, value: float | None) -> str:
    if value is None or value != value:
        return ""
    return str(int(value)) if key == "epoch" else f"{value:.6g}"
