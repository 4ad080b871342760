"""Decode images and label masks into arrays, refusing bad files with a message naming them.

Every image and mask is read through :func:`open_image`: EXIF orientation is applied (a phone
photo is segmented upright, as a viewer shows it), and an image of more than
``FCNSEG_MAX_IMAGE_PIXELS`` pixels (default 89,478,485, PIL's own warning threshold, about
9459 x 9459) is refused before it is decoded, so a small compressed "decompression bomb" cannot
fill the memory. Set the environment variable higher (or to 0: no limit) to read larger images.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fcnseg.data.info import DatasetInfo
from fcnseg.errors import DataError, first_line

# Images in these modes are converted to RGB rather than refused.
CONVERTIBLE = {
    "1",
    "L",
    "LA",
    "RGBA",
    "P",
    "PA",
    "CMYK",
    "YCbCr",
    "RGBX",
    "I;16",
    "I;16B",
    "I;16L",
    "I",
}

MAX_PIXELS_ENV = "FCNSEG_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS default: 256 MiB / 3 bytes
# PIL's own bomb check reads a module global; it is switched off (and our limit applied instead)
# only while one thread opens a file, so threads never see each other's setting half-way.
_PIL_LIMIT_LOCK = threading.Lock()


def max_image_pixels() -> int | None:
    """The pixel limit from ``FCNSEG_MAX_IMAGE_PIXELS`` (None: no limit); DataError if malformed."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit():
        raise DataError(
            f"{MAX_PIXELS_ENV} must be a whole number of pixels (0: no limit), got {text!r}"
        )
    return int(text) or None


def open_image(path: str | Path) -> Image.Image:
    """Open and decode an image file, upright (EXIF orientation applied); DataError otherwise."""
    path = Path(path)
    limit = max_image_pixels()
    with _decode_errors(path):
        with _PIL_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)  # reads the header only
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    if limit is not None and width * height > limit:
        img.close()
        raise DataError(
            f"{path}: {width}x{height} image has {width * height:,} pixels, more than the "
            f"limit of {limit:,} (a decompression bomb?); set {MAX_PIXELS_ENV} to allow more"
        )
    with _decode_errors(path):
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy when there is no tag
    return img


@contextmanager
def _decode_errors(path: Path) -> Iterator[None]:
    """Turn what PIL raises for a missing, foreign or damaged file into a one-line DataError."""
    try:
        yield
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not an image") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        first = first_line(exc, 200)
        raise DataError(f"{path}: unreadable or truncated image ({first})") from exc


def read_image(path: str | Path) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` uint8; grayscale, RGBA, palette and 16-bit images are converted."""
    return pil_to_rgb(open_image(path), str(path))


def pil_to_rgb(img: Image.Image, source: str = "image") -> np.ndarray:
    """A PIL image as RGB ``(H, W, 3)`` uint8; 16/32-bit grayscale scaled by its type's range."""
    if img.mode == "RGB":
        return np.array(img)
    if img.mode.startswith("I"):  # 16/32-bit grayscale: scale to 8 bits by the type's range
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() <= 65535 else float(a.max())
        gray = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in CONVERTIBLE:
        return np.array(img.convert("RGB"))
    raise DataError(f"{source}: unsupported image mode {img.mode!r}")


# Lossy by nature (PIL writes no lossless JPEG): a mask saved so has labels changed at edges.
LOSSY_FORMATS = ("JPEG", "MPO")


def read_mask(path: str | Path, info: DatasetInfo) -> np.ndarray:
    """A label map ``(H, W)`` uint8 of class ids (or ``info.ignore_index``), validated.

    8-bit grayscale, palette-mode (the index is the id, as in PASCAL VOC) and 16-bit masks hold
    ids directly (translated by ``info.label_map`` where the dataset has one); RGB masks are
    mapped through the palette when ``info.color_masks`` is set, and RGB masks whose three
    channels are equal are read as ids.
    """
    path = Path(path)
    img = open_image(path)
    if img.format in LOSSY_FORMATS:
        raise DataError(
            f"{path}: mask is a {img.format} file, whose lossy compression changes label ids near "
            "region edges; store masks as PNG (lossless)"
        )
    if img.mode in ("L", "P"):
        labels = np.array(img)
    elif img.mode.startswith("I"):
        labels = np.array(img)
        if labels.max(initial=0) > 255:
            raise DataError(f"{path}: 16-bit mask has label ids up to {labels.max()} (max 255)")
        labels = labels.astype(np.uint8)
    elif img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        if info.color_masks:
            labels = colors_to_ids(rgb, info, path)
        elif (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            labels = rgb[..., 0].copy()
        else:
            raise DataError(
                f"{path}: mask is an RGB colour picture; store label ids as an 8-bit PNG or set "
                f"'color_masks: true' with a 'palette' in dataset.yaml"
            )
    else:
        raise DataError(f"{path}: unsupported mask mode {img.mode!r} (expected an 8-bit label PNG)")
    if info.label_map is not None and not info.color_masks:
        labels = map_labels(labels, info, path)
    check_labels(labels, info, path)
    return labels


def map_labels(labels: np.ndarray, info: DatasetInfo, path: object) -> np.ndarray:
    """Stored values ``(H, W)`` -> class ids through ``info.label_map``; unlisted values are an
    error (a Cityscapes labelId with no training id, an ADE20K value above 150)."""
    table = info.label_table()
    mapped = table[labels]
    if (mapped < 0).any():
        bad = np.unique(labels[mapped < 0]).tolist()
        raise DataError(
            f"{path}: mask value(s) {bad[:5]} have no training id in the label map of "
            f"{info.name} (known values: {_ranges([v for v, _ in info.label_map])})"
        )
    return mapped.astype(np.uint8)


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0..2, 5``."""
    out: list[str] = []
    for v in sorted(values):
        if out and int(out[-1].split("..")[-1]) == v - 1:
            out[-1] = f"{out[-1].split('..')[0]}..{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def mask_mode(path: Path) -> str | None:
    """A mask file's PIL mode from its header (None if unreadable: reported when decoded)."""
    try:
        with Image.open(path) as img:
            return img.mode
    except (OSError, ValueError, SyntaxError):
        return None


def mask_palette(path: Path, n: int) -> list[list[int]] | None:
    """The colours a palette-mode mask stores for ids ``0..n-1`` (header only, no decoding),
    or None when it is not a palette PNG or its palette says nothing (PIL's grey ramp).

    Ids the palette lacks, and repeats of an earlier colour, are None in the list.
    """
    try:
        with Image.open(path) as img:
            if img.mode != "P":
                return None
            flat = img.getpalette() or []
    except (OSError, ValueError, SyntaxError):
        return None  # an unreadable mask is reported, with its name, when it is decoded
    colours = [tuple(flat[3 * i : 3 * i + 3]) for i in range(min(n, len(flat) // 3))]
    if all(c == (i, i, i) for i, c in enumerate(colours)):
        return None
    out: list = []
    for c in colours + [None] * (n - len(colours)):
        out.append(list(c) if c is not None and list(c) not in out else None)
    return out


def colors_to_ids(rgb: np.ndarray, info: DatasetInfo, path: Path) -> np.ndarray:
    """Map an RGB mask ``(H, W, 3)`` to ids through the palette; unknown colours are an error."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(info.palette)}
    if info.ignore_color is not None:
        r, g, b = info.ignore_color
        table[(r << 16) | (g << 8) | b] = info.ignore_index
    colors, inverse = np.unique(code, return_inverse=True)
    unknown = [c for c in colors.tolist() if c not in table]
    if unknown:
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:3])
        raise DataError(f"{path}: colours not in the palette: {shown}")
    ids = np.array([table[c] for c in colors.tolist()], dtype=np.uint8)
    return ids[inverse].reshape(code.shape)


def check_labels(labels: np.ndarray, info: DatasetInfo, path: Path) -> None:
    """DataError when a mask holds an id that is neither a class nor the ignore label."""
    present = np.unique(labels)
    bad = [int(v) for v in present if v >= info.num_classes and v != info.ignore_index]
    if bad:
        raise DataError(
            f"{path}: label ids {bad[:5]} outside 0..{info.num_classes - 1} "
            f"(ignore label is {info.ignore_index})"
        )
