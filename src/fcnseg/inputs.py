"""What the Python API accepts as an image, turned into the model's input or a picture to show.

An image may be a file path (``str`` or ``os.PathLike``), a PIL image, a NumPy array
(``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA whose alpha is dropped, ``(H, W, 1)`` or ``(H, W)``
grayscale; uint8 0-255, uint16 0-65535 or float in [0, 1]) or a torch tensor (``(3, H, W)``,
``(4, H, W)``, ``(1, H, W)`` or ``(H, W)``; uint8 0-255 or float in [0, 1]). Anything else is
refused with a one-line :class:`fcnseg.errors.FcnsegError` that says what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from fcnseg.data.io import pil_to_rgb, read_image
from fcnseg.errors import FcnsegError

ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | Tensor"

_SHAPES = "(H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grayscale"


def is_single_image(x: Any) -> bool:
    """True for one image (a path, PIL image, array or tensor), False for a list or tuple."""
    return not isinstance(x, list | tuple)


def to_tensor(x: ImageInput, name: str = "image") -> Tensor:
    """The model's input ``(3, H, W)`` float32 in [0, 1] for any accepted image.

    Files are decoded upright (EXIF orientation applied), as are PIL images that still carry an
    orientation tag. ``name`` says which input a message is about (e.g. ``"input 3"``).
    """
    if isinstance(x, str | os.PathLike):
        return _from_uint8(read_image(_path(x, name)))
    if isinstance(x, Image.Image):
        return _from_uint8(pil_to_rgb(ImageOps.exif_transpose(x), name))
    if isinstance(x, np.ndarray):
        return _from_array(x, name)
    if isinstance(x, Tensor):
        return _from_tensor(x, name)
    raise FcnsegError(
        f"{name}: expected a file path, PIL image, NumPy array or torch tensor, "
        f"got {type(x).__name__}"
    )


def to_rgb(x: ImageInput, name: str = "image") -> np.ndarray:
    """Any accepted image as an RGB picture ``(H, W, 3)`` uint8 (to blend labels over)."""
    if isinstance(x, str | os.PathLike):
        return read_image(_path(x, name))
    if isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3:
        return x
    t = to_tensor(x, name)
    return t.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _path(x: str | os.PathLike[str], name: str) -> Path:
    # Path("") is the current folder: an empty string is a mistake, not a folder to read.
    if not str(x).strip():
        raise FcnsegError(f"{name}: empty path")
    return Path(x)


def _from_uint8(rgb: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)


def _from_array(a: np.ndarray, name: str) -> Tensor:
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
        raise FcnsegError(
            f"{name}: array of shape {a.shape} looks channels-first; expected channels last, "
            f"{_SHAPES} (use a.transpose(1, 2, 0))"
        )
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise FcnsegError(f"{name}: array of shape {a.shape}; expected {_SHAPES}")
    if a.dtype.kind not in "biufc":  # object, string, structured...: torch cannot take them
        raise FcnsegError(
            f"{name}: array of type {a.dtype}; expected uint8 (0-255), uint16 or float in [0, 1]"
        )
    if not a.dtype.isnative:  # big-endian data (e.g. from a FITS or TIFF reader): torch refuses
        a = a.astype(a.dtype.newbyteorder("="))
    # np.asarray(pil_image) is read-only, which torch warns about: copy it (float32 copies anyway).
    a = np.ascontiguousarray(a) if a.flags.writeable else np.array(a)
    t = _scaled(torch.from_numpy(a), name, "array")
    t = t[..., None] if t.ndim == 2 else t
    return _rgb_channels(t.permute(2, 0, 1))


def _from_tensor(t: Tensor, name: str) -> Tensor:
    if t.ndim == 3 and t.shape[0] not in (1, 3, 4) and t.shape[2] in (1, 3, 4):
        raise FcnsegError(
            f"{name}: tensor of shape {tuple(t.shape)} looks channels-last; expected (3, H, W) "
            f"(use t.permute(2, 0, 1))"
        )
    if t.layout != torch.strided or t.device.type == "meta":
        # Sparse tensors and meta tensors (shapes without data) hold no pixels to read.
        where = "a meta tensor" if t.device.type == "meta" else f"a {t.layout} tensor"
        raise FcnsegError(f"{name}: {where}; expected a dense tensor holding pixel values")
    if t.ndim == 4:
        raise FcnsegError(
            f"{name}: tensor of shape {tuple(t.shape)} is a batch; pass list(t) for several images"
        )
    if not (t.ndim == 2 or (t.ndim == 3 and t.shape[0] in (1, 3, 4))):
        raise FcnsegError(f"{name}: tensor of shape {tuple(t.shape)}; expected (3, H, W) or (H, W)")
    t = _scaled(t.detach(), name, "tensor")
    return _rgb_channels(t[None] if t.ndim == 2 else t)


def _scaled(t: Tensor, name: str, kind: str) -> Tensor:
    """Values as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats checked as they are."""
    if min(t.shape) == 0:
        raise FcnsegError(f"{name}: empty {kind} of shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.float().div(255)
    if t.dtype == torch.uint16:
        return t.to(torch.int32).float().div(65535)
    if not t.is_floating_point():
        raise FcnsegError(
            f"{name}: {kind} of type {str(t.dtype).removeprefix('torch.')}; expected uint8 "
            f"(0-255) or float in [0, 1]"
        )
    t = t.float()
    lo, hi = t.min().item(), t.max().item()
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise FcnsegError(
            f"{name}: float {kind} with values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] "
            f"(divide 0-255 data by 255, or pass uint8)"
        )
    return t


def _rgb_channels(t: Tensor) -> Tensor:
    """``(C, H, W)`` with C in 1, 3, 4 -> ``(3, H, W)``: grayscale repeated, alpha dropped."""
    if t.shape[0] == 1:
        return t.expand(3, -1, -1).contiguous()
    return t[:3].contiguous()
