"""Inference: labels for an image of any size, tiled when large so memory stays bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_TILE = 1024  # images with a side above this go through tiles
DEFAULT_OVERLAP = 128


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare(model: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """Eval mode on ``device``; channels-last memory layout, which the CPU convolutions prefer."""
    model = model.to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def autocast(precision: str, device: torch.device):
    """A context for ``fp32`` (nothing) or ``bf16`` (autocast; needs CPU support, e.g. AVX512-BF16)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def class_scores(
    model: nn.Module, x: Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> Tensor:
    """Scores ``(N, C, H, W)`` for images ``x``: the logits, or with test-time augmentation the
    mean class probabilities over the images resized by each of ``scales`` (bilinear) and, with
    ``flip``, their mirror images, each brought back to ``H x W`` before averaging."""
    scales = tuple(float(s) for s in scales)
    if any(s <= 0 for s in scales) or not scales:
        raise ValueError(f"test-time scales must be positive numbers, got {scales}")
    if scales == (1.0,) and not flip:
        return model(x)
    h, w = x.shape[-2:]
    total = None
    for s in scales:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        xs = x if size == (h, w) else F.interpolate(x, size, mode="bilinear", antialias=s < 1)
        for mirrored in (False, True) if flip else (False,):
            inp = xs.flip(-1) if mirrored else xs
            out = model(inp.contiguous(memory_format=torch.channels_last))
            out = out.flip(-1) if mirrored else out
            if size != (h, w):
                out = F.interpolate(out, (h, w), mode="bilinear")
            prob = out.float().softmax(1)
            total = prob if total is None else total + prob
    return total / (len(scales) * (2 if flip else 1))


@torch.no_grad()
def predict_batch(
    model: nn.Module, images: Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> np.ndarray:
    """Label maps ``(N, H, W)`` uint8 for a batch of same-size images ``(N, 3, H, W)``
    (``scales``/``flip``: test-time augmentation, see :func:`class_scores`)."""
    device = next(model.parameters()).device
    x = images.to(device).contiguous(memory_format=torch.channels_last)
    return class_scores(model, x, scales, flip).argmax(1).to(torch.uint8).cpu().numpy()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    image: Tensor,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> np.ndarray:
    """Label map ``(H, W)`` uint8 for one image ``(3, H, W)`` float in [0, 1].

    Images larger than ``tile`` in a side are cut into ``tile x tile`` windows overlapping by
    ``overlap``; each window's labels are kept only in its central part (half the overlap from an
    inner edge), so seams never come from a window's border. Peak memory is one window's
    activations (at the largest of ``scales``) plus the ``H x W`` label map, whatever the image
    size. ``scales``/``flip``: test-time augmentation, see :func:`class_scores`.
    """
    h, w = image.shape[-2:]
    if h <= tile and w <= tile:
        return predict_batch(model, image[None], scales, flip)[0]
    labels = np.zeros((h, w), dtype=np.uint8)
    half = overlap // 2
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    for y in ys:
        for x in xs:
            th, tw = min(tile, h), min(tile, w)
            window = image[None, :, y : y + th, x : x + tw]
            pred = predict_batch(model, window, scales, flip)[0]
            # Keep the centre: drop half the overlap on every side that borders another tile.
            top = 0 if y == ys[0] else half
            left = 0 if x == xs[0] else half
            bottom = th if y == ys[-1] else th - half
            right = tw if x == xs[-1] else tw - half
            labels[y + top : y + bottom, x + left : x + right] = pred[top:bottom, left:right]
    return labels
