"""A legend strip under a colour-coded picture: each class present, its colour and its share.

Drawn with PIL at the picture's own resolution (no resampling of the picture itself), so the
top ``H x W`` of the result is the picture, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fcnseg.data.info import DatasetInfo

MIN_WIDTH = 240  # narrower pictures get a wider canvas so that the legend stays readable
VOID_COLOR = (0, 0, 0)  # as fcnseg.viz.colorize draws void (not imported: no matplotlib here)
TEXT_COLOR = (30, 30, 30)
EDGE_COLOR = (90, 90, 90)


def legend_entries(labels: np.ndarray, info: DatasetInfo) -> list[tuple[str, tuple, float]]:
    """``(name, rgb, share of pixels)`` for each class present in ``labels``, in class order;
    void last when present."""
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=256)
    total = max(1, int(counts.sum()))
    entries = [
        (name, tuple(color), counts[c] / total)
        for c, (name, color) in enumerate(zip(info.class_names, info.palette, strict=True))
        if counts[c]
    ]
    if counts[info.ignore_index]:
        entries.append(("void", VOID_COLOR, counts[info.ignore_index] / total))
    return entries


def add_legend(picture: np.ndarray, labels: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """``picture (H, W, 3)`` uint8 with a legend strip below: ``(H + strip, max(W, 240), 3)``.

    The legend names the classes found in ``labels`` (the ``(H, W)`` map the picture shows)
    with their colour and share of the pixels, wrapped over as many rows as the width needs.
    """
    h, w = picture.shape[:2]
    width = max(w, MIN_WIDTH)
    size = int(np.clip(round(width / 34), 11, 28))  # text height in pixels
    font = _font(size)
    pad, gap = size // 2, size
    rows = _layout(legend_entries(labels, info), font, size, width - 2 * pad, gap)
    line = round(size * 1.5)
    strip = 2 * pad + max(1, len(rows)) * line
    canvas = Image.new("RGB", (width, h + strip), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture[..., :3])), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.line([(0, h), (width, h)], fill=EDGE_COLOR)
    for r, row in enumerate(rows):
        y = h + pad + r * line + (line - size) // 2
        for x, text, color in row:
            x += pad
            draw.rectangle([x, y, x + size - 1, y + size - 1], fill=color, outline=EDGE_COLOR)
            draw.text(
                (x + size + size // 3, y + size // 2), text, fill=TEXT_COLOR, font=font, anchor="lm"
            )
    return np.asarray(canvas)


def _layout(entries, font, size: int, width: int, gap: int) -> list[list[tuple[int, str, tuple]]]:
    """Entries placed left to right, wrapped into rows of at most ``width`` pixels."""
    rows: list[list[tuple[int, str, tuple]]] = [[]]
    x = 0
    for name, color, share in entries:
        text = f"{name} {_percent(share)}"
        span = size + size // 3 + round(font.getlength(text))
        if rows[-1] and x + span > width:
            rows.append([])
            x = 0
        rows[-1].append((x, text, color))
        x += span + gap
    return rows


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1, FreeType)
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()
