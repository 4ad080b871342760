"""Recognise a dataset folder's layout and read it: the pairs of each split and what the labels
mean.

Layouts (the first that matches; ``layout: NAME`` in ``dataset.yaml`` names one outright):
    dataset1: ``images_prepped_{train,test}/`` + ``annotations_prepped_{train,test}/``
        (image-segmentation-keras); built-in description, void (11) ignored.
    voc: ``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/Segmentation/*.txt`` (PASCAL VOC
        2012, and VOC-style exports such as CVAT's with its ``labelmap.txt``).
    cityscapes: ``leftImg8bit/`` + ``gtFine/`` (labelIds -> the 19 training ids).
    ade20k: ``images/{training,validation}/`` + ``annotations/...`` (ADEChallengeData2016).
    coco: COCO-format JSON files (see :mod:`fcnseg.data.coco`).
    folders: ``{train,val,test}/images/`` + ``{train,val,test}/masks/`` and a ``dataset.yaml``.
A ``dataset.yaml`` beside a known layout overrides what its conventions say (name, classes,
palette...). When no palette is given and the masks are palette PNGs, their own colours are the
classes' colours.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fcnseg.data.formats import Found, read_ade20k, read_cityscapes, read_voc, voc_colour_masks
from fcnseg.data.info import DATASET1, DESCRIPTION_FILES, DatasetInfo, default_palette
from fcnseg.data.info import read_description as _read_description
from fcnseg.data.io import mask_mode, mask_palette
from fcnseg.data.pairs import (  # re-exported: the names other modules know this module by
    IMAGE_SUFFIXES,
    SPLITS,
    DatasetLayout,
    MaskSource,
    Sample,
    find_pairs,
    first_problem,
    list_images,
    pair_key,
)
from fcnseg.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "SPLITS",
    "DatasetLayout",
    "MaskSource",
    "Sample",
    "find_pairs",
    "first_problem",
    "list_images",
    "open_dataset",
    "pair_key",
]

LAYOUTS = ("dataset1", "voc", "cityscapes", "ade20k", "coco", "folders")
# Folders a layout cannot do without (checked when dataset.yaml names the layout).
# One of each tuple must be there (a dataset1 copy of its test split alone is evaluated as is).
REQUIRED = {
    "dataset1": (("images_prepped_train", "images_prepped_test"),),
    "voc": ("JPEGImages", "SegmentationClass"),
    "cityscapes": ("leftImg8bit", "gtFine"),
    "ade20k": ("images", "annotations"),
}


def detect_layout(root: Path) -> str:
    """The layout of ``root`` judged by its folder names (``folders`` when none matches)."""
    if (root / "images_prepped_train").is_dir() or (root / "images_prepped_test").is_dir():
        return "dataset1"
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        return "voc"
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes"
    if (root / "images" / "training").is_dir() and (root / "annotations" / "training").is_dir():
        return "ade20k"
    if not any((root / s).is_dir() for s in SPLITS) and any((root / "annotations").glob("*.json")):
        return "coco"
    if any((root / s / "_annotations.coco.json").is_file() for s in ("train", "valid", "test")):
        return "coco"
    return "folders"


def open_dataset(root: str | Path, *, strict: bool = True) -> DatasetLayout:
    """Recognise a dataset folder and pair its files.

    With ``strict`` (the default) a file without a partner is a DataError naming the first one
    and how many more there are; otherwise every such problem goes to ``layout.problems`` and
    the splits hold the pairs that were found. The layouts are listed in this module's
    docstring.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    described, source = _description(root)
    kind = described.pop("layout", None) if described is not None else None
    if kind is not None and kind not in LAYOUTS:
        raise DataError(f"{source}: unknown layout {kind!r}; known: {', '.join(LAYOUTS)}")
    kind = kind or detect_layout(root)
    for need in REQUIRED.get(kind, ()):
        choices = (need,) if isinstance(need, str) else need
        if not any((root / folder).is_dir() for folder in choices):
            folders = " or ".join(f"{folder}/" for folder in choices)
            raise DataError(f"{root}: the {kind} layout needs a {folders} folder")
    found = _read(root, kind, described is not None)
    if not found.splits:
        raise DataError(f"{root}: {kind} layout, but no split was found")
    info = _info(root, kind, found, described, source)
    every = [p for ps in found.problems.values() for p in ps]
    if strict and every:
        raise DataError(first_problem(every))
    problems = {s: p for s, p in found.problems.items() if p}
    return DatasetLayout(root, info, kind, found.splits, problems, found.conventions)


def _read(root: Path, kind: str, described: bool) -> Found:
    if kind == "dataset1":
        folders = {
            split: (root / f"images_prepped_{split}", root / f"annotations_prepped_{split}")
            for split in SPLITS
            if (root / f"images_prepped_{split}").is_dir()
        }
        return _paired(folders, "images_prepped_* with annotations_prepped_*, void 11")
    if kind == "voc":
        return read_voc(root)
    if kind == "cityscapes":
        return read_cityscapes(root)
    if kind == "ade20k":
        return read_ade20k(root)
    if kind == "coco":
        from fcnseg.data.coco import read_coco

        return read_coco(root)
    if not described:
        raise DataError(
            f"{root}: not a known layout: expected images_prepped_*/annotations_prepped_* "
            f"(dataset1), JPEGImages + SegmentationClass (VOC), leftImg8bit + gtFine "
            f"(Cityscapes), images/training + annotations/training (ADE20K), COCO JSON, or "
            f"{{train,val,test}}/images + masks with a dataset.yaml"
        )
    folders = {s: (root / s / "images", root / s / "masks") for s in SPLITS if (root / s).is_dir()}
    if not folders:
        raise DataError(f"{root}: no split folders (expected train/, val/ or test/)")
    return _paired(folders, "{train,val,test}/images + masks, classes from dataset.yaml")


def _paired(folders: dict[str, tuple[Path, Path]], conventions: str) -> Found:
    found = Found(conventions=conventions)
    for split, (images, masks) in folders.items():
        found.splits[split], found.problems[split] = find_pairs(images, masks)
    return found


def _info(
    root: Path, kind: str, found: Found, described: dict | None, source: str | None
) -> DatasetInfo:
    """The layout's description overridden by ``dataset.yaml``; palette from the masks if none."""
    if kind == "dataset1" and described is None:
        return DATASET1
    base = {} if kind in ("dataset1", "folders") else dict(found.description)
    if described is not None and "classes" in described:
        base.pop("palette", None)  # the layout's colours belong to the layout's classes
    merged = {**base, **(described or {})}
    first = next(
        (s.mask for ss in found.splits.values() for s in ss if isinstance(s.mask, Path)), None
    )
    if first is None or "classes" not in merged:
        pass  # nothing to look at, or a description error from_dict reports below
    elif kind == "voc" and "color_masks" not in merged and mask_mode(first) in ("RGB", "RGBA"):
        merged = voc_colour_masks(merged)  # colour masks (CVAT's): labelmap's or VOC's colours
    elif "palette" not in merged:
        n = len(merged["classes"])
        if (colours := mask_palette(first, n)) is not None:
            spare = iter(c for c in default_palette(256) if c not in colours)
            merged["palette"] = [c if c is not None else next(spare) for c in colours]
            found.conventions += "; colours from the masks' palette"
    info = DatasetInfo.from_dict(merged, source or f"{root} ({kind} layout)")
    return replace(info, name=root.name) if info.name == "dataset" else info


def _description(root: Path) -> tuple[dict | None, str | None]:
    """``dataset.yaml`` (or .yml, .json) as a dict of its keys, and its path; (None, None)."""
    for name in DESCRIPTION_FILES:
        path = root / name
        if path.is_file():
            d = _read_description(path)
            if not isinstance(d, dict):
                raise DataError(f"{path}: expected a mapping with 'classes'")
            return dict(d), str(path)
    return None, None
