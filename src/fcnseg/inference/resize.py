"""The working scale: images are run at the size the model was trained at, labels come back at
the input's own size.

A model learns objects at the sizes its training images show them. A phone photo (4000x3000)
run at its own size shows every object 5-8x larger than anything a model trained on 480x360
street scenes has seen, and most of it comes back wrong. So each image is resized (aspect ratio
kept) until its long side is the *working size* — recorded in the checkpoint as the training
images' median long side — the model runs there (its own ``input_scale`` still applies inside
it), and its class scores (never its labels) are resampled bilinearly to the input's size, in
bands of rows so that memory stays bounded whatever the photo's size.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fcnseg.errors import FcnsegError

RESIZE_CHOICES = ("auto", "none")
# 4096: the resized image and its class scores are held whole (C x 4096 x 3072 floats for a
# 4:3 photo); larger working scales are beyond what an FCN was trained at anyway.
MIN_SIZE, MAX_SIZE = 16, 4096
BAND_PIXELS = 1 << 20  # output pixels per band when resampling scores (x classes x 4 bytes)


def check_resize(value: Any, name: str = "--resize") -> str | int:
    """``auto``, ``none`` or a long side in pixels (an int, or text of one); FcnsegError else."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, str) and value in RESIZE_CHOICES:
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise FcnsegError(
                f"{name} must be a long side of {MIN_SIZE} to {MAX_SIZE} pixels, got {value}"
            )
        return int(value)
    raise FcnsegError(
        f"{name} must be auto (the checkpoint's working size), none (each image's own size) "
        f"or a long side in pixels such as 480, got {value!r}"
    )


def recorded_size(ckpt: dict[str, Any]) -> int | None:
    """The working size (a long side in pixels) a checkpoint records, or None."""
    value = ckpt.get("working_size")
    if isinstance(value, int) and not isinstance(value, bool) and MIN_SIZE <= value <= MAX_SIZE:
        return value
    return None


def working_size(resize: str | int, recorded: int | None) -> int | None:
    """The long side to run at for a ``resize`` option, or None for each image's own size."""
    if resize == "none":
        return None
    if resize == "auto":
        return recorded
    return int(resize)


def size_for(resize: str | int, recorded: int | None, source: str) -> int | None:
    """:func:`working_size`, saying on stderr (one line) what it assumes when ``auto`` meets a
    checkpoint that records no working size."""
    if resize == "auto" and recorded is None:
        print(fallback_note(source), file=sys.stderr)
    return working_size(resize, recorded)


def fallback_note(source: str) -> str:
    """The one line said when ``--resize auto`` meets a checkpoint without a working size."""
    return (
        f"fcnseg: {source} records no working size (written before fcnseg recorded it): "
        "running each image at its own size; --resize PIXELS (e.g. the training images' long "
        "side) sets one"
    )


def model_size(hw: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """``(h, w)`` of an ``hw`` image resized so that its long side is ``long_side``."""
    h, w = hw
    if long_side is None or max(h, w) == long_side:
        return h, w
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resized(image: Tensor, long_side: int | None) -> Tensor:
    """``(3, h, w)`` of an image ``(3, H, W)`` in [0, 1] at the working size, aspect kept
    (bilinear, antialiased when shrinking so that fine texture does not alias)."""
    size = model_size(tuple(image.shape[-2:]), long_side)
    if size == tuple(image.shape[-2:]):
        return image
    shrink = size[0] < image.shape[-2]
    out = F.interpolate(image[None].float(), size, mode="bilinear", antialias=shrink)
    return out[0].clamp_(0, 1)


def resample_bands(scores: Tensor, hw: tuple[int, int]) -> Iterator[tuple[int, int, Tensor]]:
    """Yield ``(y0, y1, band (C, y1 - y0, W))``: ``scores (C, h, w)`` resampled bilinearly to
    ``hw`` (as ``F.interpolate(mode="bilinear")`` does, edges replicated), a band of rows at a
    time, so that peak memory is one band whatever the output size."""
    height, width = hw
    scores = scores.float()
    if tuple(scores.shape[-2:]) == (height, width):
        yield 0, height, scores
        return
    # grid_sample's normalised coordinates of the output pixel centres (align_corners=False).
    gx = (torch.arange(width, dtype=torch.float32) + 0.5) * (2 / width) - 1
    gy = (torch.arange(height, dtype=torch.float32) + 0.5) * (2 / height) - 1
    step = max(1, BAND_PIXELS // max(width, 1))
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[y0:y1, None]), -1)[None]
        band = F.grid_sample(scores[None], grid, mode="bilinear", padding_mode="border",
                             align_corners=False)  # fmt: skip
        yield y0, y1, band[0]


def argmax0(scores: Tensor) -> Tensor:
    """``scores.argmax(0)`` as uint8 for ``(C, H, W)``: a pass per class, several times faster
    on a CPU than a reduction across the outermost dimension (ties go to the lower class)."""
    best = scores[0].clone()
    index = torch.zeros(scores.shape[1:], dtype=torch.uint8)
    for c in range(1, scores.shape[0]):
        better = scores[c] > best
        index.masked_fill_(better, c)
        torch.maximum(best, scores[c], out=best)
    return index


def labels_at(scores: Tensor, hw: tuple[int, int]) -> np.ndarray:
    """Labels ``(H, W)`` uint8: the argmax of ``scores (C, h, w)`` resampled bilinearly to ``hw``.

    A bilinear value is a convex combination of four neighbouring model pixels' scores, so where
    those four agree on their best class, that class is the answer: only the pixels between
    differently labelled model pixels are interpolated (a few percent of a photo), a band of
    rows at a time, so time and memory stay small whatever the photo's size.
    """
    c, h, w = scores.shape
    scores = scores.float().cpu()
    small = argmax0(scores).numpy()  # (h, w) the model pixels' own labels
    if (h, w) == tuple(hw):
        return small
    height, width = hw
    ylo, yhi, wy = (a.numpy() for a in _axis(h, height))
    xlo, xhi, wx = (a.numpy() for a in _axis(w, width))
    flat = scores.reshape(c, -1).t().contiguous().numpy()  # (h * w, C): a pixel's scores a row
    out = np.empty(hw, dtype=np.uint8)
    step = max(1, BAND_PIXELS // 4 // max(width, 1))
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        top, bottom = small[ylo[y0:y1]], small[yhi[y0:y1]]  # (b, w) uint8
        band = np.take(top, xlo, axis=1)
        mixed = band != np.take(top, xhi, axis=1)
        mixed |= band != np.take(bottom, xlo, axis=1)
        mixed |= band != np.take(bottom, xhi, axis=1)
        ys, xs = np.nonzero(mixed)
        if ys.size:
            gy = ys + y0
            r0, r1, c0, c1 = ylo[gy] * w, yhi[gy] * w, xlo[xs], xhi[xs]
            fx, fy = wx[xs, None], wy[gy, None]
            upper = flat[r0 + c0] * (1 - fx) + flat[r0 + c1] * fx
            lower = flat[r1 + c0] * (1 - fx) + flat[r1 + c1] * fx
            band[ys, xs] = (upper * (1 - fy) + lower * fy).argmax(1)
        out[y0:y1] = band
    return out


def _axis(n_in: int, n_out: int) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices ``lo``, ``hi`` and weights of ``hi`` of a bilinear resize along one axis,
    as ``F.interpolate(mode="bilinear", align_corners=False)`` computes them."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, (src - lo).float()


def probabilities_at(scores: Tensor, hw: tuple[int, int], softmax: bool) -> np.ndarray:
    """Probabilities ``(C, H, W)`` float32 from ``scores (C, h, w)`` resampled to ``hw``
    (``softmax``: the scores are logits, turned into probabilities after resampling)."""
    out = np.empty((scores.shape[0], *hw), dtype=np.float32)
    for y0, y1, band in resample_bands(scores, hw):
        out[:, y0:y1] = (band.softmax(0) if softmax else band).cpu().numpy()
    return out
