"""What the Python API accepts as an image, turned into the model's input or a picture to show.

An image may be a file path (``str`` or ``os.PathLike``), a PIL image, a NumPy array
(``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA whose alpha is dropped, ``(H, W, 1)`` or ``(H, W)``
grayscale; uint8 0-255, uint16 0-65535 or float in [0, 1]) or a torch tensor (``(3, H, W)``,
``(4, H, W)``, ``(1, H, W)`` or ``(H, W)``; uint8 0-255 or float in [0, 1]). Anything else is
refused with a one-line :class:`fcnseg.errors.FcnsegError` that says what was expected.

Many images may be given at once (:func:`expand`): a list or tuple, a folder (its images, sorted
by name), or a glob pattern such as ``"photos/*.jpg"`` (sorted); a video file is a sequence of
frames. A URL is refused with one line: fcnseg reads local files only.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from fcnseg.data.io import pil_to_rgb, read_image
from fcnseg.data.layout import IMAGE_SUFFIXES, list_images
from fcnseg.errors import DataError, FcnsegError

ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray | Tensor"

_SHAPES = "(H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grayscale"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?[]")


def check_not_url(x: Any) -> None:
    """FcnsegError (one line) for ``http://...``, ``s3://...`` and other URLs: ``Path`` would
    fold their ``//`` and the user would read "not found" about a name they never gave."""
    if isinstance(x, str) and _URL.match(x):
        raise FcnsegError(f"{x} is a URL: download it first (fcnseg reads local files only)")


def is_video_path(x: Any) -> bool:
    """True for a path (not a URL) whose suffix is a video's (``.mp4``, ``.mov``...)."""
    if not isinstance(x, str | os.PathLike) or (isinstance(x, str) and _URL.match(x)):
        return False
    from fcnseg.inference.video import is_video

    return is_video(x)


def expand(x: Any) -> tuple[bool, Iterable[Any]]:
    """``(single, inputs)``: one image as ``(True, [x])``; a list/tuple, a folder or a glob
    pattern as ``(False, its images)``, folders and patterns sorted by name; a video path as
    ``(False, its frames (H, W, 3) uint8, read lazily)``."""
    if isinstance(x, list | tuple):
        return False, x
    if not isinstance(x, str | os.PathLike):
        return True, [x]
    check_not_url(x)
    if not str(x).strip():  # Path("") is the current folder: an empty name is a mistake
        raise FcnsegError("image: empty path")
    path = Path(x)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise DataError(f"{path}: no images in this folder ({_suffixes()})")
        return False, images
    if not path.exists() and _GLOB.search(str(x)):
        images = sorted(  # ** matches folders at any depth, as people expect of it
            Path(p)
            for p in glob.glob(str(x), recursive=True)
            if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DataError(f"{x}: the pattern matches no images ({_suffixes()})")
        return False, [p for p in images if p.is_file()]
    if is_video_path(path):
        return False, _frames(path)
    return True, [x]


def _frames(path: Path) -> Iterator[np.ndarray]:
    from fcnseg.inference.video import probe, read_frames

    probe(path)  # a missing or unreadable video fails here, before the first frame is asked for
    return read_frames(path)


def _suffixes() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))


def collect_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders expanded to their images, each file once; DataError for what
    does not exist (``fcnseg predict --input``)."""
    files: list[Path] = []
    inputs = list(inputs)
    for item in inputs:
        check_not_url(item)
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(f"no images found in {', '.join(map(str, inputs))} ({_suffixes()})")
    seen: set[Path] = set()
    unique = []
    for f in files:  # a file named twice (or given and inside a given folder) is done once
        if (key := f.resolve()) not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def is_single_image(x: Any) -> bool:
    """True for one image (a path, PIL image, array or tensor), False for a list or tuple."""
    return not isinstance(x, list | tuple)


def to_tensor(x: ImageInput, name: str = "image") -> Tensor:
    """The model's input ``(3, H, W)`` float32 in [0, 1] for any accepted image.

    Files are decoded upright (EXIF orientation applied), as are PIL images that still carry an
    orientation tag. ``name`` says which input a message is about (e.g. ``"input 3"``).
    """
    if isinstance(x, str | os.PathLike):
        check_not_url(x)
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
        check_not_url(x)
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
