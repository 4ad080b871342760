"""Pictures people look at: colour-coded masks, image | truth | prediction panels, curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from fcnseg.checkpoint import atomic_write  # noqa: E402
from fcnseg.data.info import DatasetInfo  # noqa: E402

VOID_COLOR = (0, 0, 0)


def colorize(labels: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Label map ``(H, W)`` -> RGB ``(H, W, 3)`` uint8 with the dataset's palette; void is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: info.num_classes] = np.array(info.palette, dtype=np.uint8)
    lut[info.ignore_index] = VOID_COLOR
    return lut[np.asarray(labels).astype(np.int64).clip(0, 255)]


def overlay(
    image: np.ndarray, labels: np.ndarray, info: DatasetInfo, alpha: float = 0.5
) -> np.ndarray:
    """Blend the colour-coded labels over the image ``(H, W, 3)`` uint8."""
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colorize(labels, info)
    return blend.round().astype(np.uint8)


def _legend(fig: plt.Figure, info: DatasetInfo) -> None:
    handles = [
        Patch(color=np.array(c) / 255, label=n)
        for n, c in zip(info.class_names, info.palette, strict=True)
    ]
    handles.append(Patch(color=np.array(VOID_COLOR) / 255, label="void (ignored)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 100) -> None:
    """Write a figure atomically as PNG and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)


def triplet_panel(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
    info: DatasetInfo,
    path: str | Path,
    title: str = "",
    row_titles: Sequence[str] | None = None,
) -> None:
    """A grid of ``image | truth | prediction`` rows with a class legend, saved to ``path``."""
    n = len(rows)
    fig, axes = plt.subplots(n, 3, figsize=(9, 2.6 * n + 0.8), squeeze=False)
    for r, (image, truth, pred) in enumerate(rows):
        panels = [image, None if truth is None else colorize(truth, info), colorize(pred, info)]
        for c, (ax, pic, name) in enumerate(
            zip(axes[r], panels, ("image", "truth", "prediction"), strict=True)
        ):
            ax.axis("off")
            if pic is not None:
                ax.imshow(pic, interpolation="nearest")
            label = name if r == 0 else ""
            if c == 0 and row_titles:
                label = f"{label}\n{row_titles[r]}" if label else row_titles[r]
            ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    _legend(fig, info)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    save_figure(fig, path)


def curves(history: Sequence[dict], path: str | Path) -> None:
    """Training loss and validation mean IU per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set(xlabel="epoch", ylabel="training loss", title="loss")
    b.plot(epochs, [h["mean_iu"] for h in history], marker="o", label="mean IU")
    b.plot(epochs, [h["pixel_acc"] for h in history], marker=".", label="pixel acc")
    b.set(xlabel="epoch", ylabel="validation", title="validation", ylim=(0, 1))
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def confusion_plot(cm: np.ndarray, info: DatasetInfo, path: str | Path) -> None:
    """Row-normalised confusion matrix with class names."""
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(info.class_names)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.55 * n), max(4.0, 0.8 + 0.5 * n)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), info.class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), info.class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (rows normalised)")
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.01:
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(
                    j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6, color=color
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


def per_class_bar(
    per_class_iu: dict[str, float | None], info: DatasetInfo, path: str | Path
) -> None:
    """Bar chart of per-class IoU in the palette's colours."""
    names = list(per_class_iu)
    values = [per_class_iu[n] if per_class_iu[n] is not None else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * len(names), 3.5))
    ax.bar(names, values, color=[np.array(c) / 255 for c in info.palette], edgecolor="black")
    ax.set(ylim=(0, 1), ylabel="IoU", title="per-class IoU")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    save_figure(fig, path)
