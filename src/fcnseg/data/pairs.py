"""Image/mask pairs and the splits of a dataset: what every layout reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fcnseg.data.info import DatasetInfo
from fcnseg.errors import DataError


class MaskSource(Protocol):
    """A label mask that is not a file of its own (a COCO image's annotations); ``str()`` of it
    names where it comes from in messages."""

    def read(self, info: DatasetInfo) -> np.ndarray:
        """The label map ``(H, W)`` uint8 of class ids or ``info.ignore_index``, checked."""
        ...


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image and its label mask (``mask`` is None for prediction-only inputs)."""

    image: Path
    mask: Path | MaskSource | None


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset root: its description and the samples of each split found there."""

    root: Path
    info: DatasetInfo
    kind: str  # "dataset1", "folders", "voc", "cityscapes", "ade20k" or "coco"
    splits: dict[str, list[Sample]]
    # Per split, files that could not be paired (only with ``open_dataset(..., strict=False)``).
    problems: dict[str, list[str]] = field(default_factory=dict)
    conventions: str = ""  # how this layout was read, in a few words (verify-data prints it)

    def split(self, name: str) -> list[Sample]:
        """The samples of split ``name``; DataError if there is no such split."""
        if name not in self.splits:
            raise DataError(
                f"{self.root}: no '{name}' split (found: {', '.join(self.splits) or 'none'})"
            )
        return self.splits[name]

    def validation_split(self) -> str:
        """``val`` where the dataset has one, else ``test`` (dataset1 has no val split)."""
        for name in ("val", "test"):
            if name in self.splits:
                return name
        raise DataError(
            f"{self.root}: no 'val' or 'test' split to validate on (found: "
            f"{', '.join(self.splits) or 'none'})"
        )


# Name endings that differ between an image and its mask in a public layout (Cityscapes).
PAIR_SUFFIXES = ("_leftImg8bit", "_gtFine_labelIds")


def pair_key(path: Path) -> str:
    """The stem an image and its mask share: ``aachen_000000_000019`` for both
    ``..._leftImg8bit.png`` and ``..._gtFine_labelIds.png``, else the file's stem."""
    for suffix in PAIR_SUFFIXES:
        if path.stem.endswith(suffix):
            return path.stem.removesuffix(suffix)
    return path.stem


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` by suffix, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def images_in(folder: str | Path, option: str) -> list[Path]:
    """The images of a folder an option names (``--examples``, ``--calibration``...), sorted; a
    one-line DataError when it is not a folder or holds no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{option} {folder}: folder not found")
    images = list_images(folder)
    if not images:
        raise DataError(f"{option} {folder}: no images in it")
    return images


def first_problem(problems: list[str]) -> str:
    """The first message and how many more there are, as one line."""
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more; fcnseg verify-data lists them all)" if more else "")


def find_pairs(images_dir: Path, masks_dir: Path) -> tuple[list[Sample], list[str]]:
    """Pair images and masks by file stem.

    Returns:
        The pairs, sorted by stem, and one message per problem: a missing folder, an image
        without a mask, a mask without an image, two files with one stem, an empty split.
    """
    missing = [f"{d}: folder not found" for d in (images_dir, masks_dir) if not d.is_dir()]
    if missing:
        return [], missing
    problems: list[str] = []
    images = _by_stem(list_images(images_dir), problems)
    masks = _by_stem(list_images(masks_dir), problems)
    problems += [
        f"{path}: image has no mask in {masks_dir}"
        for stem, path in images.items()
        if stem not in masks
    ]
    problems += [
        f"{path}: mask has no image in {images_dir}"
        for stem, path in masks.items()
        if stem not in images
    ]
    if not images:
        problems.append(f"{images_dir}: empty split (no images)")
    return [Sample(images[s], masks[s]) for s in sorted(images) if s in masks], problems


def _by_stem(paths: list[Path], problems: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in paths:
        if path.stem in out:  # e.g. a.jpg and a.png: which one the mask belongs to is unknown
            problems.append(f"{path}: same name as {out[path.stem].name} (pairs match by stem)")
        else:
            out[path.stem] = path
    return out
