"""Paired image/mask transforms on torchvision transforms v2 (masks are ``tv_tensors.Mask``).

Masks are only ever resized with nearest-neighbour and padded with the ignore label. Images leave
as float in [0, 1]: normalisation belongs to the model (its backbone weights define it).
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

AUGMENTS = ("none", "flip", "full", "strong")


class SoftTarget(tv_tensors.Mask):
    """Class probabilities ``(C, H, W)`` uint8 (a teacher's, for distillation), transformed as a
    mask is (nearest resizing, the same crops and flips) but padded with 0, "no probabilities
    here", and left uint8 by :func:`to_float` (its per-type choices name ``Mask`` exactly)."""


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


class RandomGamma(v2.Transform):
    """With probability ``p``, gamma correction ``x ** g`` of the image, ``g`` log-uniform in
    ``[low, high]`` (under- and over-exposure: dusk, glare); masks pass through."""

    def __init__(self, low: float, high: float, p: float = 0.5) -> None:
        super().__init__()
        self.low, self.high, self.p = low, high, p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        apply = random.random() < self.p
        gamma = math.exp(random.uniform(math.log(self.low), math.log(self.high)))
        return {"gamma": gamma if apply else 1.0}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image) and params["gamma"] != 1.0:
            return TF.adjust_gamma(inpt, params["gamma"])
        return inpt


class FocusCrop(v2.Transform):
    """A square crop of ``size`` (padding image with 0 and mask with ``fill_mask`` when smaller).

    With probability ``p`` the crop is centred (give or take a quarter of its side) on a random
    pixel of one of ``classes`` found in the mask, the class drawn uniformly among those present;
    otherwise, or when none is present, its place is uniform, as ``RandomCrop``'s. Thin and rare
    classes (poles, signs, pedestrians) then fill more of the training pixels than their share.
    """

    def __init__(self, size: int, fill_mask: int, classes: tuple[int, ...] = (), p: float = 0.0):
        super().__init__()
        self.size, self.fill_mask, self.classes, self.p = size, fill_mask, tuple(classes), p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = next(TF.get_size(x) for x in flat_inputs if isinstance(x, tv_tensors.Image))
        ph, pw = max(h, self.size), max(w, self.size)
        top, left = random.randint(0, ph - self.size), random.randint(0, pw - self.size)
        mask = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        if mask is not None and self.classes and random.random() < self.p:
            present = [k for k in self.classes if bool((mask == k).any())]
            if present:
                ys, xs = torch.nonzero(mask == random.choice(present), as_tuple=True)
                i = random.randrange(ys.numel())
                jitter = self.size // 4
                y = int(ys[i]) - self.size // 2 + random.randint(-jitter, jitter)
                x = int(xs[i]) - self.size // 2 + random.randint(-jitter, jitter)
                top, left = min(max(y, 0), ph - self.size), min(max(x, 0), pw - self.size)
        return {"pad": [0, 0, pw - w, ph - h], "top": top, "left": left}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return inpt
        if any(params["pad"]):
            fill = self.fill_mask if type(inpt) is tv_tensors.Mask else 0
            inpt = TF.pad(inpt, params["pad"], fill=fill)
        return TF.crop(inpt, params["top"], params["left"], self.size, self.size)


def photometric(strength: str) -> list[v2.Transform]:
    """Colour transforms of ``full`` (mild jitter) or ``strong`` (other light and weather).

    ``strong`` widens the jitter and adds exposure (gamma), blur (focus, motion, rain), a little
    sensor noise and rare grayscale, for models that must generalise to sequences filmed in other
    light than the training ones (CamVid's dusk sequence). The noise is added in [0, 1] floats,
    so it comes after :func:`to_float` (see :func:`train_transform`).
    """
    if strength == "full":
        return [v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02)]
    return [
        v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.05),
        RandomGamma(0.6, 1.6, p=0.5),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.5))], p=0.2),
        v2.RandomGrayscale(p=0.05),
    ]


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
    rare_classes: tuple[int, ...] = (),
    rare_crops: float = 0.0,
) -> v2.Compose:
    """Training transforms.

    Args:
        augment: ``none`` (same as evaluation), ``flip`` (horizontal flips only, which keeps a
            frozen backbone's inputs to two variants per image, so its features can be cached),
            ``full`` (random scale, crop, flip and photometric jitter) or ``strong`` (``full``
            with the stronger colour changes of :func:`photometric`).
        ignore_index: label the crop pads masks with.
        crop_size: square crop for ``full`` (required there: batches need one size).
        scale: random scale range for ``full``.
        rare_classes: class ids that crops may be centred on (see :class:`FocusCrop`).
        rare_crops: probability that a ``full`` crop is centred on one of ``rare_classes``.
    """
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augment {augment!r}; choose one of: {', '.join(AUGMENTS)}")
    if augment == "none":
        return eval_transform()
    if augment == "flip":
        return v2.Compose([v2.RandomHorizontalFlip(), to_float()])
    if not crop_size:
        raise ValueError(f"augment {augment!r} needs a crop size")
    crop: v2.Transform = v2.RandomCrop(  # kept when off: earlier recipes' crops stay the same
        crop_size,
        pad_if_needed=True,
        fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index, "others": 0},
    )
    if rare_crops > 0 and rare_classes:
        crop = FocusCrop(crop_size, ignore_index, rare_classes, rare_crops)
    noise = [v2.RandomApply([v2.GaussianNoise(sigma=0.02)], p=0.3)] if augment == "strong" else []
    return v2.Compose(
        [
            RandomScale(*scale),
            crop,
            v2.RandomHorizontalFlip(),
            *photometric(augment),
            to_float(),
            *noise,
        ]
    )
