"""Pictures people look at: colour-coded masks, image | truth | prediction panels, curves.

Each ``*_figure`` function returns a matplotlib figure (tests measure its layout); the function of
the same task without the suffix saves it as a PNG.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from fcnseg.data.info import DatasetInfo  # noqa: E402
from fcnseg.files import PNG_MARK, atomic_write  # noqa: E402

VOID_COLOR = (0, 0, 0)
# When a class already uses black, void takes the first of these its palette leaves free.
VOID_FALLBACKS = ((255, 0, 255), (0, 255, 255), (255, 255, 255), (128, 128, 128))
VOID_NAME = "void (ignored)"
DPI = 100  # every PNG is saved at this resolution; font sizes below are chosen for it


def void_color(info: DatasetInfo) -> tuple[int, int, int]:
    """How void is drawn: black, or a colour no class uses when a class is black."""
    used = {tuple(c) for c in info.palette}
    return next((c for c in (VOID_COLOR, *VOID_FALLBACKS) if c not in used), VOID_COLOR)


def colorize(labels: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Label map ``(H, W)`` -> RGB ``(H, W, 3)`` uint8 with the dataset's palette; void is black
    (or :func:`void_color`'s choice when a class is black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: info.num_classes] = np.array(info.palette, dtype=np.uint8)
    lut[info.ignore_index] = void_color(info)
    return lut[np.asarray(labels).astype(np.int64).clip(0, 255)]


def overlay(
    image: np.ndarray, labels: np.ndarray, info: DatasetInfo, alpha: float = 0.5
) -> np.ndarray:
    """Blend the colour-coded labels over the image ``(H, W, 3)`` uint8."""
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colorize(labels, info)
    return blend.round().astype(np.uint8)


@dataclass(frozen=True)
class LegendEntry:
    """One line of a legend: a class (or void, ``label`` = the ignore label) and its colour;
    with label maps, its pixels and their share of all pixels (else None)."""

    label: int
    name: str
    rgb: tuple[int, int, int]
    pixels: int | None = None
    share: float | None = None


def legend(
    info: DatasetInfo,
    labels: np.ndarray | None = None,
    *,
    absent: bool = False,
    by_share: bool = False,
) -> list[LegendEntry]:
    """The one legend model of every picture (matplotlib panels, PIL pictures, the app's table).

    Args:
        info: the classes, their palette and the ignore label.
        labels: a label map ``(H, W)``; None: every class and void, without shares.
        absent: with ``labels``, also the classes (and void) that are not in it (share 0).
        by_share: largest share first (ties by id); otherwise by id, void last.
    """
    ids = [*range(info.num_classes), info.ignore_index]
    if labels is None:
        return [LegendEntry(i, *_name_and_colour(info, i)) for i in ids]
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    pixels = dict(zip(values.tolist(), counts.tolist(), strict=True))
    total = max(int(counts.sum()), 1)
    entries = [
        LegendEntry(i, *_name_and_colour(info, i), pixels.get(i, 0), pixels.get(i, 0) / total)
        for i in ids
        if absent or pixels.get(i, 0)
    ]
    return sorted(entries, key=lambda e: -(e.pixels or 0)) if by_share else entries


def _name_and_colour(info: DatasetInfo, label: int) -> tuple[str, tuple[int, int, int]]:
    if label < info.num_classes:
        return info.class_names[label], tuple(info.palette[label])
    return VOID_NAME, void_color(info)


def legend_entries(
    info: DatasetInfo, labels: np.ndarray | None = None
) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, rgb)`` of every class and void, or of those present in ``labels`` ``(H, W)``."""
    return [(e.name, e.rgb) for e in legend(info, labels)]


def legend_handles(info: DatasetInfo, labels: np.ndarray | None = None) -> list[Patch]:
    """Matplotlib legend patches for every class and void (or those present in ``labels``)."""
    return [
        Patch(facecolor=np.array(c) / 255, edgecolor="0.3", linewidth=0.5, label=n)
        for n, c in legend_entries(info, labels)
    ]


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> None:
    """Write a figure atomically as PNG and close it."""
    mark = {"Software": PNG_MARK}  # fcnseg may replace it later (fcnseg.files.written_by_fcnseg)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=mark))
    plt.close(fig)


def triplet_figure(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
    info: DatasetInfo,
    title: str = "",
    row_titles: Sequence[str] | None = None,
) -> Figure:
    """Rows of ``image (H, W, 3) | truth (H, W) | prediction (H, W)`` above a class legend.

    Each row is a subfigure whose title (``row_titles``) sits above that row's pictures, so that
    constrained layout keeps it clear of the row above; columns are named on the first row.
    """
    n = len(rows)
    h, w = rows[0][0].shape[:2]
    col_w = 3.0  # inches per picture
    row_h = col_w * h / w + (0.3 if row_titles else 0.0)
    handles = legend_handles(info)
    ncol = min(6, len(handles))
    legend_h = 0.25 * math.ceil(len(handles) / ncol) + 0.15
    fig = plt.figure(
        figsize=(3 * col_w, n * row_h + 0.3 + legend_h + (0.35 if title else 0.0)),
        layout="constrained",
        dpi=DPI,
    )
    subs = fig.subfigures(
        n + 1, 1, height_ratios=[row_h + (0.3 if r == 0 else 0) for r in range(n)] + [legend_h]
    )
    for r, (sub, (image, truth, pred)) in enumerate(zip(subs, rows, strict=False)):
        panels = (image, None if truth is None else colorize(truth, info), colorize(pred, info))
        for ax, pic, name in zip(
            sub.subplots(1, 3), panels, ("image", "truth", "prediction"), strict=True
        ):
            ax.axis("off")
            if pic is not None:
                ax.imshow(pic, interpolation="nearest")
            if r == 0:
                ax.set_title(name, fontsize=9)
        if row_titles:
            sub.suptitle(row_titles[r], fontsize=9, x=0.01, ha="left")
    subs[-1].legend(handles=handles, loc="center", ncol=ncol, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def triplet_panel(
    rows: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
    info: DatasetInfo,
    path: str | Path,
    title: str = "",
    row_titles: Sequence[str] | None = None,
) -> None:
    """A grid of ``image | truth | prediction`` rows with a class legend, saved to ``path``."""
    save_figure(triplet_figure(rows, info, title, row_titles), path)


def _number(value: object) -> float:
    """A history cell as a float; missing or empty cells (older metrics.csv rows) are NaN."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def curves_figure(history: Sequence[dict], val_split: str = "val") -> Figure:
    """Training (and validation) loss and validation mean IU / pixel accuracy per epoch.

    Args:
        history: one dict per epoch with ``epoch``, ``train_loss``, ``mean_iu``, ``pixel_acc``
            and, where recorded, ``val_loss``.
        val_split: the split validation ran on, named in the labels (dataset1 validates on
            ``test``).
    """
    epochs = [int(_number(h["epoch"])) for h in history]
    column = lambda key: [_number(h.get(key)) for h in history]  # noqa: E731
    marker = "o" if len(epochs) <= 30 else None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained", dpi=DPI)
    a.plot(epochs, column("train_loss"), marker=marker, label="training loss")
    val_loss = column("val_loss")
    if np.isfinite(val_loss).any():
        a.plot(epochs, val_loss, marker=marker, label=f"{val_split} loss")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.plot(epochs, column("mean_iu"), marker=marker, label="mean IU")
    b.plot(epochs, column("pixel_acc"), marker="." if marker else None, label="pixel accuracy")
    b.set(
        xlabel="epoch", ylabel=f"score on {val_split}", title=f"validation on the {val_split} split"
    )
    b.set_ylim(0, 1)
    pad = max(0.5, 0.03 * (epochs[-1] - epochs[0])) if epochs else 0.5
    for ax in (a, b):
        # Whole epochs only, also when there is a single one (min_n_ticks=1).
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
        if epochs:
            ax.set_xlim(min(epochs) - pad, max(epochs) + pad)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    return fig


def curves(history: Sequence[dict], path: str | Path, *, val_split: str = "val") -> None:
    """Save :func:`curves_figure` to ``path``."""
    save_figure(curves_figure(history, val_split), path)


def confusion_figure(cm: np.ndarray, info: DatasetInfo) -> Figure:
    """Row-normalised confusion matrix ``(C, C)`` (rows: truth) with its numbers, 9 pt."""
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(info.class_names)
    # 0.55 in per cell leaves room for "0.00" at 9 pt; past ~36 classes (ADE20K's 150) the
    # figure stays about 20 in wide, without the numbers (an 85 in figure took a minute to draw).
    cell = min(0.55, 20 / max(n, 1))
    ticks = 9 if cell >= 0.3 else 6
    fig, ax = plt.subplots(figsize=(2.6 + cell * n, 2.0 + cell * n), layout="constrained", dpi=DPI)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n), info.class_names, rotation=45, ha="right", fontsize=ticks)
    ax.set_yticks(range(n), info.class_names, fontsize=ticks)
    ax.set_xlabel("predicted", fontsize=10)
    ax.set_ylabel("true", fontsize=10)
    ax.set_title("confusion matrix (each row: where a true class went)", fontsize=10)
    for i, j in zip(*np.nonzero(norm >= 0.005), strict=True) if cell >= 0.5 else ():
        color = "white" if norm[i, j] > 0.55 else "black"
        ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=9, color=color)
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    return fig


def confusion_plot(cm: np.ndarray, info: DatasetInfo, path: str | Path) -> None:
    """Save :func:`confusion_figure` to ``path``."""
    save_figure(confusion_figure(cm, info), path)


def per_class_figure(per_class_iu: dict[str, float | None], info: DatasetInfo) -> Figure:
    """Per-class IoU bars in the palette's colours, each with its value, and a dashed mean line.

    A class whose IoU is undefined (None: absent from truth and prediction) has no bar and reads
    "n/a"; an IoU of 0 reads "0.00". The mean is over the defined classes, as mean IU is.
    """
    names = list(per_class_iu)
    colour = dict(zip(info.class_names, info.palette, strict=True))
    slot = min(0.55, 24 / max(len(names), 1))  # inches per bar; ~26 in wide at most (ADE20K)
    fig, ax = plt.subplots(figsize=(2.0 + slot * len(names), 4.0), layout="constrained", dpi=DPI)
    defined = [i for i, n in enumerate(names) if per_class_iu[n] is not None]
    values = [float(per_class_iu[names[i]]) for i in defined]  # type: ignore[arg-type]
    bars = ax.bar(
        defined,
        values,
        color=[np.array(colour.get(names[i], (128, 128, 128))) / 255 for i in defined],
        edgecolor="0.2",
        linewidth=0.6,
    )
    # White behind the values, so that the mean line never strikes through one.
    box = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"}
    if slot >= 0.3:  # narrower bars have no room for their numbers
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=8, bbox=box)
    for i, name in enumerate(names):
        if per_class_iu[name] is None and slot >= 0.3:
            ax.text(
                i, 0.01, "n/a", ha="center", va="bottom", fontsize=8, color="0.4", style="italic"
            )
    title = "per-class IoU"
    if len(defined) < len(names):
        title += "\n(n/a: class in neither truth nor prediction)"
    if values:
        mean = float(np.mean(values))
        ax.axhline(mean, color="0.15", linestyle="--", linewidth=1, zorder=1.5)
        # The value as a tick of a right-hand axis: at the line's end, and laid out with it.
        right = ax.secondary_yaxis("right")
        right.set_yticks([mean], [f"mean IU\n{mean:.3f}"], fontsize=8)
    ax.set_xticks(
        range(len(names)), names, rotation=45, ha="right", fontsize=9 if slot >= 0.3 else 6
    )
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.set_title(title, fontsize=10)
    return fig


def per_class_bar(
    per_class_iu: dict[str, float | None], info: DatasetInfo, path: str | Path
) -> None:
    """Save :func:`per_class_figure` to ``path``."""
    save_figure(per_class_figure(per_class_iu, info), path)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Matplotlib ships DejaVu Sans: the same letters as the figures, on every machine.
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def legend_picture(
    labels: np.ndarray,
    info: DatasetInfo,
    image: np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """A colour-coded label map (or its overlay on ``image``) above a legend of the classes in it.

    Args:
        labels: label map ``(H, W)`` of class ids (and possibly ``info.ignore_index``).
        info: class names and palette.
        image: ``(H, W, 3)`` uint8 to blend the colours over, or None for the colours alone.
        alpha: weight of the colours in the overlay.

    Returns:
        ``(H + strip, max(W, legend width), 3)`` uint8: the picture, pixel for pixel at the top
        (centred when the legend is wider), then a white strip with one swatch and name per
        class present in ``labels`` (void too, where present), wrapped onto as many lines as
        needed.
    """
    pic = colorize(labels, info) if image is None else overlay(image, labels, info, alpha)
    h, w = pic.shape[:2]
    size = int(np.clip(w // 36, 12, 32))  # text grows with the picture, readable at 100 %
    font, pad, gap = _font(size), size // 2, size
    items = [
        (name, rgb, size + pad // 2 + font.getlength(name))
        for name, rgb in legend_entries(info, labels)
    ]
    width = max(w, int(max((it[2] for it in items), default=0)) + 2 * pad)
    lines: list[list[tuple[str, tuple[int, int, int], float]]] = [[]]
    x = pad
    for item in items:
        if lines[-1] and x + item[2] > width - pad:
            lines.append([])
            x = pad
        lines[-1].append(item)
        x += item[2] + gap
    line_h = int(size * 1.5)
    strip_h = pad + line_h * len(lines) + pad // 2 if items else 0
    canvas = Image.new("RGB", (width, h + strip_h), "white")
    canvas.paste(Image.fromarray(pic), ((width - w) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        x, y = pad, h + pad + k * line_h
        for name, rgb, item_w in line:
            draw.rectangle(
                (x, y, x + size - 1, y + size - 1), fill=tuple(rgb), outline=(80, 80, 80)
            )
            draw.text(
                (x + size + pad // 2, y + size / 2), name, fill=(0, 0, 0), font=font, anchor="lm"
            )
            x += int(item_w) + gap
    return np.asarray(canvas)
