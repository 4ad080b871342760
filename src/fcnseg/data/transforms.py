"""Paired image/mask transforms on torchvision transforms v2 (masks are ``tv_tensors.Mask``).

Masks are only ever resized with nearest-neighbour and padded with the ignore label. Images leave
as float in [0, 1]: normalisation belongs to the model (its backbone weights define it).
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

AUGMENTS = ("none", "flip", "full")


class RandomScale(v2.Transform):
    """Resize image and mask together by a random factor in ``[low, high]`` (mask: nearest)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = next(TF.get_size(x) for x in flat_inputs if isinstance(x, tv_tensors.Image))
        s = random.uniform(self.low, self.high)
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, params["size"], interpolation=v2.InterpolationMode.NEAREST)
        if isinstance(inpt, tv_tensors.Image):
            return TF.resize(inpt, params["size"], antialias=True)
        return inpt


def to_float() -> v2.ToDtype:
    """uint8 image -> float32 in [0, 1]; mask -> int64 (ids unchanged)."""
    return v2.ToDtype(
        {tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True
    )


def eval_transform() -> v2.Compose:
    """Evaluation and prediction: the original resolution, no resizing."""
    return v2.Compose([to_float()])


def train_transform(
    augment: str,
    ignore_index: int,
    crop_size: int | None = None,
    scale: tuple[float, float] = (0.5, 2.0),
) -> v2.Compose:
    """Training transforms.

    Args:
        augment: ``none`` (same as evaluation), ``flip`` (horizontal flips only, which keeps a
            frozen backbone's inputs to two variants per image, so its features can be cached) or
            ``full`` (random scale, crop, flip and photometric jitter).
        ignore_index: label the crop pads masks with.
        crop_size: square crop for ``full`` (required there: batches need one size).
        scale: random scale range for ``full``.
    """
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augment {augment!r}; choose one of: {', '.join(AUGMENTS)}")
    if augment == "none":
        return eval_transform()
    if augment == "flip":
        return v2.Compose([v2.RandomHorizontalFlip(), to_float()])
    if not crop_size:
        raise ValueError("augment 'full' needs a crop size")
    return v2.Compose(
        [
            RandomScale(*scale),
            v2.RandomCrop(
                crop_size,
                pad_if_needed=True,
                fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index, "others": 0},
            ),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02),
            to_float(),
        ]
    )
