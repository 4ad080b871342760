"""Decode images and label masks into arrays, refusing bad files with a message naming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnseg.data.info import DatasetInfo
from fcnseg.errors import DataError

# Images in these modes are converted to RGB rather than refused.
CONVERTIBLE = {"L", "LA", "RGBA", "P", "PA", "CMYK", "YCbCr", "RGBX", "I;16", "I;16B", "I;16L", "I"}


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or truncated image ({exc})") from exc
    return img


def read_image(path: str | Path) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` uint8; grayscale, RGBA, palette and 16-bit images are converted."""
    path = Path(path)
    return pil_to_rgb(_open(path), str(path))


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


def read_mask(path: str | Path, info: DatasetInfo) -> np.ndarray:
    """A label map ``(H, W)`` uint8 of class ids (or ``info.ignore_index``), validated.

    8-bit grayscale, palette-mode (the index is the id, as in PASCAL VOC) and 16-bit masks hold
    ids directly; RGB masks are mapped through the palette when ``info.color_masks`` is set, and
    RGB masks whose three channels are equal are read as ids.
    """
    path = Path(path)
    img = _open(path)
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
    check_labels(labels, info, path)
    return labels


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
