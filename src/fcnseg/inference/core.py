"""Inference: labels for an image of any size, at the model's working scale, tiled when large
so memory stays bounded.

With ``size`` (a long side in pixels, see :mod:`fcnseg.inference.resize`) each image is first
resized to the working scale; tiles are cut and test-time scales applied in that resized image
(model pixels), and the class scores are resampled to the input's size. ``size=None`` runs each
image at its own size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcnseg.errors import FcnsegError
from fcnseg.inference.precision import check_bf16, check_precision
from fcnseg.inference.resize import labels_at, model_size, probabilities_at, resized

K = TypeVar("K")

DEFAULT_TILE = 1024  # images with a side above this go through tiles
DEFAULT_OVERLAP = 128
MAX_TILES = 4096  # windows per image; the defaults give 20 for a 12-megapixel photo


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; FcnsegError for an unknown or absent device."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise FcnsegError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FcnsegError(f"device {name!r}: CUDA is not available here (use cpu or auto)")
    return device


def check_tiling(tile: int, overlap: int, names: tuple[str, str] = ("tile", "overlap")) -> None:
    """FcnsegError unless ``tile > overlap >= 0`` (whole numbers): every window must advance."""
    for value, name in ((tile, names[0]), (overlap, names[1])):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise FcnsegError(f"{name} must be a whole number of pixels, got {value!r}")
    if tile < 1:
        raise FcnsegError(f"{names[0]} must be at least 1 pixel, got {tile}")
    if overlap < 0:
        raise FcnsegError(f"{names[1]} must be 0 or more pixels, got {overlap}")
    if tile <= overlap:
        raise FcnsegError(
            f"{names[0]} ({tile}) must be larger than {names[1]} ({overlap}): tiles advance by "
            f"{names[0]} - {names[1]} pixels"
        )


# A scale multiplies the image's area by its square: 60 asked for 3600 times the memory.
MAX_TTA_SCALE = 4.0


def check_scales(scales: Sequence[float], name: str = "tta_scales") -> tuple[float, ...]:
    """The test-time scales as floats (numbers, or their text as flags give them), relative to
    the working scale; FcnsegError unless they are one or more positive numbers, at most 4 (a
    larger scale multiplies the memory of a forward by its square). The one check of
    test-time scales: the option declaration and the inference functions both call it."""
    if isinstance(scales, int | float | str):
        scales = [scales]
    try:
        out = tuple(float(s) for s in scales)
    except (TypeError, ValueError) as exc:
        raise FcnsegError(f"{name} must be positive numbers, got {_shown(scales)}") from exc
    if not out or not all(0 < s <= MAX_TTA_SCALE for s in out):  # NaN fails too
        raise FcnsegError(
            f"{name} must be positive numbers, at most {MAX_TTA_SCALE:g}, got {_shown(scales)}"
        )
    return out


def _shown(scales: object) -> str:
    try:
        return " ".join(str(s) for s in scales)  # type: ignore[union-attr]
    except TypeError:
        return repr(scales)


def prepare(model: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """Eval mode on ``device``; channels-last memory layout, which the CPU convolutions prefer."""
    model = model.to(device).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def autocast(precision: str, device: torch.device):
    """A context for ``fp32`` and ``int8`` (nothing: an int8 model is a quantized graph run by
    OpenVINO) or ``bf16`` (autocast). FcnsegError where the device has no fast bf16 (see
    :func:`fcnseg.inference.precision.check_bf16`): there bf16 is emulated, slower than fp32."""
    check_precision(precision)
    if precision == "bf16":
        check_bf16(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def class_scores(
    model: nn.Module, x: Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> Tensor:
    """Scores ``(N, C, H, W)`` for images ``x``: the logits, or with test-time augmentation the
    mean class probabilities over the images resized by each of ``scales`` (bilinear) and, with
    ``flip``, their mirror images, each brought back to ``H x W`` before averaging."""
    scales = check_scales(scales, "test-time scales")
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
    check_tiling(tile, overlap)
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def _stitched(image: Tensor, tile: int, overlap: int, window_fn: Callable) -> np.ndarray:
    """``(..., H, W)`` from ``window_fn(window (1, 3, h, w)) -> (..., h, w)``, window by window,
    keeping each window's centre (half the overlap from every edge it shares with another)."""
    h, w = image.shape[-2:]
    half = overlap // 2
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) * len(xs) > MAX_TILES:  # tile 64, overlap 63: a window per pixel, for hours
        raise FcnsegError(
            f"a {w}x{h} image would take {len(ys) * len(xs)} windows of {tile} pixels advancing "
            f"by {tile - overlap}: raise --tile or lower --overlap"
        )
    th, tw = min(tile, h), min(tile, w)
    out = None
    for y in ys:
        for x in xs:
            pred = window_fn(image[None, :, y : y + th, x : x + tw])
            if out is None:  # allocated from the first window: its dtype, its leading dims
                out = np.zeros((*pred.shape[:-2], h, w), dtype=pred.dtype)
            top = 0 if y == ys[0] else half
            left = 0 if x == xs[0] else half
            bottom = th if y == ys[-1] else th - half
            right = tw if x == xs[-1] else tw - half
            out[..., y + top : y + bottom, x + left : x + right] = pred[..., top:bottom, left:right]
    return out


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    image: Tensor,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    size: int | None = None,
) -> np.ndarray:
    """Label map ``(H, W)`` uint8 for one image ``(3, H, W)`` float in [0, 1].

    Images larger than ``tile`` in a side are cut into ``tile x tile`` windows overlapping by
    ``overlap`` (``tile > overlap >= 0``); each window's labels are kept only in its central part
    (half the overlap from an inner edge), so seams never come from a window's border. Peak memory
    is one window's activations (at the largest of ``scales``) plus the ``H x W`` label map,
    whatever the image size. ``scales``/``flip``: test-time augmentation, see
    :func:`class_scores`. ``size``: the working scale's long side (None: the image's own size);
    the image is resized to it first, tiles are cut there, and the scores are resampled back.
    """
    check_tiling(tile, overlap)
    h, w = image.shape[-2:]
    if model_size((h, w), size) != (h, w):
        scores = score_map(model, resized(image, size), tile=tile, overlap=overlap,
                           scales=scales, flip=flip)  # fmt: skip
        return labels_at(torch.from_numpy(scores), (h, w))
    if h <= tile and w <= tile:
        return predict_batch(model, image[None], scales, flip)[0]
    return _stitched(image, tile, overlap, lambda win: predict_batch(model, win, scales, flip)[0])


@torch.no_grad()
def score_map(
    model: nn.Module,
    image: Tensor,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> np.ndarray:
    """Class scores ``(C, H, W)`` float32 for one image ``(3, H, W)`` at its own size, tiled as
    in :func:`predict_labels`: the logits, or with test-time augmentation the mean
    probabilities (see :func:`class_scores`)."""
    check_tiling(tile, overlap)
    device = next(model.parameters()).device

    def window(win: Tensor) -> np.ndarray:
        x = win.to(device).contiguous(memory_format=torch.channels_last)
        return class_scores(model, x, scales, flip).float()[0].cpu().numpy()

    h, w = image.shape[-2:]
    if h <= tile and w <= tile:
        return window(image[None])
    return _stitched(image, tile, overlap, window)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    image: Tensor,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    size: int | None = None,
) -> np.ndarray:
    """Class probabilities ``(C, H, W)`` float32 for one image ``(3, H, W)`` float in [0, 1]:
    the softmax of the logits, or with test-time augmentation the mean probabilities; tiled and
    resized to ``size`` as in :func:`predict_labels` (whose labels are their argmax, up to ties;
    the scores are resampled to the input's size before the softmax)."""
    h, w = image.shape[-2:]
    tta = check_scales(scales) != (1.0,) or flip
    scores = score_map(model, resized(image, size), tile=tile, overlap=overlap,
                       scales=scales, flip=flip)  # fmt: skip
    return probabilities_at(torch.from_numpy(scores), (h, w), softmax=not tta)


def predict_many(
    model: nn.Module,
    items: Iterable[tuple[K, Tensor]],
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    batch_size: int = 4,
    precision: str = "fp32",
    size: int | None = None,
) -> Iterator[tuple[K, np.ndarray]]:
    """``(key, labels (H, W) uint8)`` for each ``(key, image (3, H, W))``, in order.

    Each image is resized to the working scale ``size`` first (None: its own size; see
    :func:`predict_labels`). Consecutive images of the same (resized) size, not over ``tile``,
    run together in batches of up to ``batch_size``; larger ones go through
    :func:`predict_labels`' tiles. ``items`` is read lazily, so memory holds one batch whatever
    the number of images. ``precision``: see :func:`autocast`, entered around each batch only
    (never across a ``yield``).
    """
    check_tiling(tile, overlap)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FcnsegError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    device = next(model.parameters()).device
    autocast(precision, device)  # checks the name before any work
    pending: list[tuple[K, tuple[int, int], Tensor]] = []  # key, input size, resized image

    def flush() -> list[tuple[K, np.ndarray]]:
        batch = torch.stack([im.to(device) for _, _, im in pending])
        with autocast(precision, device):
            scores = class_scores(model, batch.contiguous(memory_format=torch.channels_last),
                                  scales, flip)  # fmt: skip
        done = [(key, _labels(sc, hw)) for (key, hw, _), sc in zip(pending, scores, strict=True)]
        pending.clear()
        return done

    for key, image in items:
        hw = tuple(image.shape[-2:])
        image = resized(image, size)
        if pending and (image.shape != pending[0][2].shape or len(pending) == batch_size):
            yield from flush()
        if max(image.shape[-2:]) > tile:
            yield key, _tiled_labels(model, image, hw, tile, overlap, scales, flip, precision)
        else:
            pending.append((key, hw, image))
    if pending:
        yield from flush()


def _tiled_labels(
    model: nn.Module,
    image: Tensor,
    hw: tuple[int, int],
    tile: int,
    overlap: int,
    scales: Sequence[float],
    flip: bool,
    precision: str,
) -> np.ndarray:
    """Labels at the input's size ``hw`` of an image already at the working scale, in tiles."""
    device = next(model.parameters()).device
    with autocast(precision, device):
        if tuple(image.shape[-2:]) == hw:
            return predict_labels(
                model, image, tile=tile, overlap=overlap, scales=scales, flip=flip
            )
        scores = score_map(model, image, tile=tile, overlap=overlap, scales=scales, flip=flip)
    return labels_at(torch.from_numpy(scores), hw)


def _labels(scores: Tensor, hw: tuple[int, int]) -> np.ndarray:
    """Labels at ``hw`` from one image's scores ``(C, h, w)``: their argmax, resampled first
    where the image was resized."""
    if tuple(scores.shape[-2:]) == hw:
        return scores.argmax(0).to(torch.uint8).cpu().numpy()
    return labels_at(scores.float().cpu(), hw)
